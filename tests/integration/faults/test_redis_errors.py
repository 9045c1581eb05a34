"""Redis refusing or failing mid-round, on a private redis-server (shared Kafka): out of memory
(maxmemory with noeviction), read-only (turned into a replica of nothing), every client
connection killed, and the server stopped (SIGSTOP) until the worker has timed out on it.

While Redis refuses writes the worker stops fetching and its /health answers 503 with the
reason; once Redis takes writes again it goes on. It ends with the profiles equal to a batch
recomputation and the alert states, due-index and alert keys equal to a clean run's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from crm_core.errors import StateStoreError
from crm_core.settings import Settings
from crm_score.services import LocalRedis, free_port
from schemas import PurchaseEvent, example_event_dict
from scorers.deltas import delta_for, epoch_seconds
from streams.state.profiles import ApplyOutcome, ApplyRequest, RedisProfileStore, connect_redis
from tests.integration.harness import WorkerProcess, metric_values, wait_caught_up
from tests.integration.histories import (
    assert_matches_clean,
    consumed_at_least,
    read_outcome,
    standard_fault_run,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def private_redis(base_settings: Settings) -> AsyncIterator[Settings]:
    """A redis-server of the test's own (stopped by PID), beside the shared Kafka."""
    root = Path(tempfile.mkdtemp(prefix="crm-redis-errors-"))
    settings = base_settings.model_copy(
        update={"services_dir": root, "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    server = LocalRedis(settings)
    try:
        await asyncio.to_thread(server.up)
        yield settings
    finally:
        await asyncio.to_thread(server.down)
        shutil.rmtree(root, ignore_errors=True)


def _requests(customer: str, count: int) -> list[ApplyRequest]:
    out = []
    for offset in range(count):
        raw = example_event_dict("order_placed")
        raw.update(customer_id=customer, event_id=f"{customer}-{offset}")
        event = PurchaseEvent.model_validate(raw)
        out.append(
            ApplyRequest(customer, "purchase", offset, event.event_id,
                         epoch_seconds(event.event_time), delta_for(event, {"USD": 1.0}))
        )  # fmt: skip
    return out


async def test_a_refused_round_is_retried_on_a_fresh_connection(private_redis: Settings) -> None:
    """Two rounds in flight on one connection, the first refused (out of memory): its retry
    must not read the second round's replies as its own (a ValueError escaped here), and the
    second is sent again, as the ingest loop does for a lost round."""
    settings = private_redis.model_copy(update={"redis_key_prefix": "fresh"})
    client = connect_redis(settings)
    store = RedisProfileStore(client, settings)
    first, second = _requests("c1", 3), _requests("c2", 2)
    try:
        await store.connect()
        await client.config_set("maxmemory", 1)
        a = store.send_read_and_apply([store.profile_key("c1")], first)
        b = store.send_read_and_apply([store.profile_key("c2")], second)
        with pytest.raises(StateStoreError, match="OOM"):
            await store.collect(a)
        await client.config_set("maxmemory", 0)
        raws, outcomes = await store.read_and_apply([store.profile_key("c1")], first)
        assert raws == [{}] and [o.outcome for o in outcomes] == [ApplyOutcome.APPLIED] * 3
        assert store.was_lost(b)
        with pytest.raises(StateStoreError, match="lost"):
            await store.collect(b)
        raws, outcomes = await store.read_and_apply([store.profile_key("c2")], second)
        assert raws == [{}] and [o.outcome for o in outcomes] == [ApplyOutcome.APPLIED] * 2
    finally:
        await store.close()
        await client.aclose()


async def _refusing(worker: WorkerProcess, reason: str) -> None:
    """Until /health answers 503 naming ``reason``; then the worker must not fetch more."""

    def refused(status: int, health: dict[str, object]) -> bool:
        return status == 503 and reason in str(health.get("reason", ""))

    await worker.wait_status(refused, f"/health never said 503 {reason!r}")
    before = worker.health_status()[1]["consumed"]
    await asyncio.sleep(1.0)  # fetching would have consumed thousands of messages by now
    status, health = worker.health_status()
    assert status == 503 and health["consumed"] == before, (status, health, before)


@pytest.mark.timeout(600)  # the whole history three times held up, plus the clean run
async def test_redis_oom_readonly_and_reset_mid_round(
    base_settings: Settings,
    private_redis: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    # A long group session: on this shared machine a big round can hold the event loop past
    # the default 10 s, and a rebalance is not what this test is about.
    run = await standard_fault_run(
        base_settings, private_redis, tmp_path, broker_session_timeout=45.0
    )
    history, reference, settings = run.history, run.reference, run.settings
    admin = aioredis.Redis.from_url(settings.redis_url)
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    n = len(history.messages)
    try:
        await worker.start()
        # Out of memory a little past what is used now: the next rounds fill it mid-save.
        await consumed_at_least(worker, n // 5)
        used = (await admin.info("memory"))["used_memory"]
        await admin.config_set("maxmemory", used + 200_000)
        await _refusing(worker, "OOM")
        await admin.config_set("maxmemory", 0)
        # Read-only: a replica of a master that is not there keeps its data and refuses writes.
        await consumed_at_least(worker, n // 2)
        await admin.replicaof("127.0.0.1", free_port())
        await _refusing(worker, "READONLY")
        await admin.replicaof("NO", "ONE")
        # Every client connection reset mid-round.
        await consumed_at_least(worker, 13 * n // 20)
        await admin.client_kill_filter(_type="normal", skipme=True)
        await wait_caught_up(settings, [worker], timeout=180)
        assert worker.proc is not None and worker.proc.returncode is None, worker.log_tail()
        status, health = worker.health_status()
        assert status == 200 and health["ok"] is True, health
        errors = metric_values(worker, "crm_redis_errors_total")
    finally:
        await worker.stop()
        await admin.aclose()
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    assert {"oom", "readonly", "connection"} <= {
        labels["kind"] for labels, value in errors if value > 0
    }, errors
    print(f"\nRedis errors by kind: {errors}; {outcome.repeats()} repeated alerts (same key)")


@pytest.mark.timeout(600)  # the whole history held up once, plus the clean run
async def test_redis_that_stops_answering_mid_round(
    base_settings: Settings,
    private_redis: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis stops answering (the server is stopped with SIGSTOP: connections stay open, nothing
    comes back) while rounds are running. It stays stopped until the worker has said so, not
    for a fixed time, so a round holding the event loop on a busy machine cannot outlast it.
    The worker keeps the default reply timeout (10 s): /health must answer 503 meanwhile, not
    wait for Redis as long (its PING is bounded), and a test's HTTP client gives up at 5 s."""
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    run = await standard_fault_run(
        base_settings, private_redis, tmp_path, broker_session_timeout=45.0
    )
    history, reference, settings = run.history, run.reference, run.settings
    pid = LocalRedis(settings).process.pid()
    assert pid is not None, "the private Redis has no PID file"
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    try:
        await worker.start()
        await consumed_at_least(worker, len(history.messages) // 3)
        os.kill(pid, signal.SIGSTOP)
        try:
            await _refusing(worker, "Redis timeout")
            timeouts = [v for labels, v in metric_values(worker, "crm_redis_errors_total")
                        if labels["kind"] == "timeout"]  # fmt: skip
        finally:
            os.kill(pid, signal.SIGCONT)
        assert timeouts and timeouts[0] > 0, f"no timeout counted: {timeouts}"
        await wait_caught_up(settings, [worker], timeout=180)
        assert worker.proc is not None and worker.proc.returncode is None, worker.log_tail()
        status, health = worker.health_status()
        assert status == 200 and health["ok"] is True, health
    finally:
        await worker.stop()
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    print(f"\n{timeouts[0]:.0f} Redis timeouts counted; {outcome.repeats()} repeated alerts")
