"""A worker paused (SIGSTOP) past its group session mid-backlog and resumed (SIGCONT): the
group expels it, it rejoins and re-reads what it had not committed. State must match a clean
run, and its counters (/health totals and /metrics) must count every event once: a round
dropped because its partitions were revoked under it counts nothing (shared Kafka and Redis).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson
import pytest

from crm_core.settings import Settings
from streams.state.keys import Layout
from streams.state.profiles import connect_redis
from streams.state.records import ProfileRecords
from tests.integration.harness import WorkerProcess, metric_values, valid_events, wait_caught_up
from tests.integration.histories import (
    assert_matches_clean,
    consumed_at_least,
    read_all,
    read_outcome,
    standard_fault_run,
)

pytestmark = pytest.mark.integration
SESSION = 6.0  # seconds: the broker's smallest allowed group session
_SORTED = orjson.OPT_SORT_KEYS


async def test_worker_paused_past_its_session_counts_each_event_once(
    base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    run = await standard_fault_run(
        base_settings, base_settings, tmp_path, broker_session_timeout=SESSION
    )
    history, reference, settings = run.history, run.reference, run.settings
    worker = WorkerProcess(settings, str(tmp_path / "paused.log"))
    try:
        await worker.start()
        await consumed_at_least(worker, len(history.messages) // 3)
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(SESSION + 3)  # the group expels it meanwhile
        worker.proc.send_signal(signal.SIGCONT)
        await wait_caught_up(settings, [worker], timeout=180)
        health = worker.health()
        events = sum(value for _, value in metric_values(worker, "crm_events_total"))
        letters = int(sum(value for _, value in metric_values(worker, "crm_deadletters_total")))
    finally:
        await worker.stop()
    dropped = worker.log_tail(2_000_000).count("dropped the part of a finishing round")
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    keys = Layout(settings.redis_key_prefix)

    # What happened, as the state and the topics record it: every apply bumped its customer's
    # apply counter once (ja); every dead letter published is counted once (a record re-read
    # after the worker's commit failed is dead-lettered again: at least once, like the topic).
    client = connect_redis(settings)
    try:
        records = ProfileRecords(client)
        ja = [await records.get(keys.profile(c), "ja") for c in history.customers]
    finally:
        await client.aclose()
    published = [orjson.loads(v) for v in await read_all(settings, "deadletter")]
    sources = {(d["source_topic"], d["partition"], d["offset"]) for d in published}
    # A consumer of crm.deadletter drops repeats by (source_topic, partition, offset): a repeat
    # says the same as the first, all but when it was detected.
    by_source: dict[tuple[str, int, int], set[bytes]] = {}
    for d in published:
        same = orjson.dumps({k: v for k, v in d.items() if k != "detected_at"}, option=_SORTED)
        by_source.setdefault((d["source_topic"], d["partition"], d["offset"]), set()).add(same)
    differing = [where for where, seen in by_source.items() if len(seen) > 1]
    assert not differing, f"a repeated dead letter says something else: {differing[:3]}"
    assert len(sources) == len(history.messages) - len(valid_events(
        (m.kind, m.key, m.value) for m in history.messages
    )), "a malformed record was not dead-lettered"  # fmt: skip
    truth = {"applied": sum(int(n or 0) for n in ja), "dead letters": len(published)}
    counted = {"applied": health["applied"], "dead letters": letters}
    assert events == health["applied"], (events, health["applied"])
    assert counted == truth, f"counted {counted}, but the state and topics say {truth}"
    repeats = len(published) - len(sources)
    print(f"\n{dropped} round parts dropped by the rebalance; {truth}; {repeats} repeated")
    alerts = health["alerts"]
    assert isinstance(alerts, dict)
    published = sum(n for kind, n in alerts.items() if kind != "cross_sell")
    assert published == len(reference.alert_keys), (alerts, len(reference.alert_keys))
