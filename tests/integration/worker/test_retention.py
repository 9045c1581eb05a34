"""Retention against the real Kafka and Redis: customers silent longer than
``CRM_RETENTION_DAYS`` in event time are removed, a customer who comes back starts afresh, and
a rebuild from the topics (a replay) gives what the worker gave live.

The expectation is the batch fold (:mod:`tests.oracle`) of each customer's events since its
last silence of at least the retention: nothing at all when it was silent that long at the end.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.rebuild import rebuild_state
from schemas import Event
from scorers.profile import Profile
from streams.state.keys import Layout
from streams.state.profiles import connect_redis
from streams.state.records import ProfileRecords
from tests.integration.harness import WorkerProcess, read_profiles, valid_events, wait_caught_up
from tests.integration.histories import History, fault_settings, make_history, publish_models
from tests.integration.keyspace import holding, wipe
from tests.oracle import recompute_profiles

pytestmark = pytest.mark.integration

RETENTION_DAYS = 30.0


def expected_profiles(history: History, retention: int) -> dict[str, Profile]:
    """Each customer's fold of its events since its last silence of ``retention`` seconds or
    more; customers silent that long at the end (the last walk limit) are left out."""
    events: dict[str, list[Event]] = defaultdict(list)
    for event in valid_events((m.kind, m.key, m.value) for m in history.messages):
        events[event.customer_id].append(event)
    limit = math.floor(history.until.timestamp()) - 1
    expected = {}
    for customer, theirs in events.items():
        theirs.sort(key=lambda e: e.event_time)
        times = [int(e.event_time.timestamp()) for e in theirs]
        start = max(
            (i for i in range(1, len(times)) if times[i] - times[i - 1] >= retention), default=0
        )
        if times[-1] + retention > limit:
            expected[customer] = recompute_profiles(theirs[start:])[customer]
    return expected


async def alert_states(settings: Settings, customers: set[str]) -> dict[str, bytes | None]:
    """Each customer's stored alert state (``as``), as bytes."""
    client = connect_redis(settings)
    records, layout = ProfileRecords(client), Layout(settings.redis_key_prefix)
    try:
        return {c: await records.get(layout.profile(c), "as") for c in sorted(customers)}
    finally:
        await client.aclose()


async def test_silent_customers_expire_and_a_replay_removes_the_same(
    base_settings: Settings, tmp_path: Path
) -> None:
    history = make_history(customers=30, seed=5, malformed=0.0)
    settings = fault_settings(base_settings, history, retention_days=RETENTION_DAYS)
    retention = round(RETENTION_DAYS * 86_400)
    expected = expected_profiles(history, retention)
    gone = history.customers - set(expected)
    came_back = {c for c, p in expected.items() if p != history.expected[c]}
    assert gone and came_back  # the history has both cases (a test of something)

    await publish_models(settings, history)
    await produce_messages(settings, history.messages)
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    try:
        await worker.start()
        await wait_caught_up(settings, [worker], timeout=180)
    finally:
        await worker.stop()
    live = await read_profiles(settings, history.customers)
    assert live == expected
    for customer in sorted(gone):
        # The capped stream of recent alerts keeps alerts published before the removal.
        assert [k for k in await holding(settings, customer) if not k.endswith("{alerts}")] == []
    live_states = await alert_states(settings, set(expected))

    await wipe(settings, keep_suppression=False)  # a replay from the topics
    await publish_models(settings, history)
    rebuilt = await rebuild_state(settings, until=history.until, progress=False)
    assert rebuilt.applied > 0
    assert await read_profiles(settings, history.customers) == expected
    assert await alert_states(settings, set(expected)) == live_states
    for customer in sorted(gone):
        assert await holding(settings, customer) == []
    print(orjson.dumps({"gone": len(gone), "came_back": len(came_back)}).decode())
    await wipe(settings, keep_suppression=False)
