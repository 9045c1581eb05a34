"""Erasing a customer against the real Kafka and Redis: while a worker applies the customer's
events, then through a rebuild; a SCAN of every key and value finds the id nowhere."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.rebuild import rebuild_state
from schemas import CustomerErased
from streams.api.rights import erase_customer, erased_path
from streams.state.erasure import ErasureReport
from streams.state.profiles import connect_redis
from tests.integration.harness import WorkerProcess, read_profiles, wait_caught_up
from tests.integration.histories import (
    consumed_at_least,
    fault_settings,
    make_history,
    publish_models,
    read_all,
)
from tests.integration.keyspace import holding, wipe

pytestmark = pytest.mark.integration


async def erase(settings: Settings, customer_id: str) -> ErasureReport:
    """``crm-score erase`` without the process: erase one customer as nobody in particular."""
    client = connect_redis(settings)
    try:
        return await erase_customer(settings, client, customer_id, datetime.now(UTC), None)
    finally:
        await client.aclose()


async def test_erase_while_events_are_in_flight_then_rebuild(
    base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = make_history(customers=80, seed=11, malformed=0.0)
    secret = secrets.token_hex(32)
    monkeypatch.setenv("CRM_ERASURE_KEY", secret)  # the worker subprocess reads it
    settings = fault_settings(
        base_settings, history, erasure_key=SecretStr(secret), erase_fence_seconds=3.0
    )
    n = len(history.messages)
    half, last = n // 2, 3 * n // 4
    # A customer with events the worker applied before the erasure and the most events in the
    # last quarter, which is sent after it.
    early = {m.key.decode() for m in history.messages[: half // 4] if m.key}
    later = Counter(m.key.decode() for m in history.messages[last:] if m.key)
    target = max(early, key=lambda c: later[c])
    await publish_models(settings, history)
    await produce_messages(settings, history.messages[:half])
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    try:
        await worker.start()
        await consumed_at_least(worker, half // 2)
        # The third quarter of the history goes out while the
        # erasure runs: some arrive before the worker sees the suppression record, some after.
        report, _ = await asyncio.gather(
            erase(settings, target),
            produce_messages(settings, history.messages[half:last]),
        )
        await produce_messages(settings, history.messages[last:])  # all skipped for the target
        await wait_caught_up(settings, [worker], timeout=180)
        health = worker.health()
    finally:
        await worker.stop()

    assert report.first and report.keys_deleted > 0
    skipped = health.get("skipped")
    assert isinstance(skipped, dict) and skipped.get("erased", 0) > 0, health
    assert await holding(settings, target) == []
    others = await read_profiles(settings, history.customers - {target})
    assert len(others) == len(history.customers) - 1  # only the target is gone
    erasures = [CustomerErased.from_json_bytes(v) for v in await read_all(settings, "erasures")]
    assert [e.customer_id for e in erasures] == [target]
    assert await holding(settings, erased_path(report.tag)) != []  # the audit names the tag

    # Erasing again finds nothing left and keeps the first record.
    again = await erase(settings, target)
    assert not again.first and again.keys_deleted == 0

    # A rebuild over the topics (the target's events are still there) skips the customer.
    await wipe(settings, keep_suppression=True)
    rebuilt = await rebuild_state(settings, until=history.until, progress=False)
    assert rebuilt.applied > 0
    assert await holding(settings, target) == []
    assert len(await read_profiles(settings, history.customers)) == len(history.customers) - 1
    print(orjson.dumps({"erase": report.to_dict(), "rebuild": rebuilt.to_dict()}).decode())
    await wipe(settings, keep_suppression=False)  # the shared Redis is scanned by other tests
