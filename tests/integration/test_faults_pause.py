"""A worker paused (SIGSTOP) past its group session mid-backlog and resumed (SIGCONT): the
group expels it, it rejoins and re-reads what it had not committed. State must match a clean
run, and its counters (/health totals and /metrics) must count every event once: a round
dropped because its partitions were revoked under it counts nothing (shared Kafka and Redis).
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from scorers.dedup import Dedup, Verdict, release_order
from tests.integration.faults import (
    assert_matches_clean,
    consumed_at_least,
    fault_settings,
    publish_models,
    read_outcome,
    standard_history,
    standard_reference,
)
from tests.integration.harness import WorkerProcess, metric_values, valid_events, wait_caught_up

pytestmark = pytest.mark.integration
SESSION = 6.0  # seconds: the broker's smallest allowed group session


async def test_worker_paused_past_its_session_counts_each_event_once(
    base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    history = standard_history()
    reference = await standard_reference(base_settings, tmp_path / "clean.log")
    settings = fault_settings(base_settings, history, broker_session_timeout=SESSION)
    await publish_models(settings, history)
    await produce_messages(settings, history.messages)
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
        letters = sum(value for _, value in metric_values(worker, "crm_deadletters_total"))
    finally:
        await worker.stop()
    log = worker.log_tail(2_000_000)
    assert "dropped the part of a finishing round" in log, "no round was cut by the rebalance"
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)

    valid = sorted(
        valid_events((m.kind, m.key, m.value) for m in history.messages), key=release_order
    )
    verdicts = Counter(Dedup(settings.dedup_window_days * 86400).admit_event(e) for e in valid)
    dead = len(history.messages) - len(valid) + verdicts[Verdict.BEYOND_WINDOW]
    counted = {"applied": health["applied"], "events": events, "dead letters": letters}
    expected = {
        "applied": verdicts[Verdict.NEW],
        "events": verdicts[Verdict.NEW],
        "dead letters": dead,
    }
    assert counted == expected, f"counted {counted}, expected {expected}"
    alerts = health["alerts"]
    assert isinstance(alerts, dict)
    published = sum(n for kind, n in alerts.items() if kind != "cross_sell")
    assert published == len(reference.alert_keys), (alerts, len(reference.alert_keys))
