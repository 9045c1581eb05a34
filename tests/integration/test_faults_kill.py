"""Fault tests that kill workers (shared Kafka and Redis): SIGKILL at seeded random points with
restarts, and two workers in one group with the second joining mid-stream and one killed.

Both end with the profiles equal to a batch recomputation and the alert states, due-index and
alert idempotency keys equal to a clean run's (see :mod:`tests.integration.faults`).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from crm_score.produce import produce_messages
from crm_score.settings import Settings
from tests.integration.faults import (
    SEED,
    History,
    Outcome,
    assert_matches_clean,
    fault_settings,
    publish_models,
    read_outcome,
    standard_history,
    standard_reference,
)
from tests.integration.harness import WorkerProcess, wait_caught_up

pytestmark = pytest.mark.integration


def _history() -> History:
    return standard_history()


async def _reference(base: Settings, tmp_path: Path) -> Outcome:
    return await standard_reference(base, tmp_path / "clean.log")


async def _consumed_at_least(worker: WorkerProcess, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            consumed = (await asyncio.to_thread(worker.health)).get("consumed")
            if isinstance(consumed, int) and consumed >= count:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"the worker did not consume {count} messages:\n{worker.log_tail()}")


@pytest.mark.xfail(
    strict=False,
    reason="open: in about one run of three a customer's walk after a restart still differs "
    "from the clean run (one or two segment alerts; e.g. an event walked with a journaled "
    "profile from before an earlier purchase), see README 'Reliability and scale'",
)
async def test_sigkill_at_seeded_points_while_producing(
    base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")  # fixed model versions, as the clean run
    history = _history()
    reference = await _reference(base_settings, tmp_path)
    # Until the input is complete the worker must not jump its clock to the history's end.
    settings = fault_settings(base_settings, history, replay_until=None)
    await publish_models(settings, history)
    rate = len(history.messages) / 24  # the stream arrives over ~24 s
    producing = asyncio.create_task(produce_messages(settings, history.messages, rate=rate))
    rnd = random.Random(SEED)
    worker = WorkerProcess(settings, str(tmp_path / "killed.log"))
    kills_mid_stream = 0
    try:
        for _ in range(4):
            await worker.start()
            await worker.wait_ready()
            await asyncio.sleep(rnd.uniform(0.3, 2.5))  # into its rounds, at a seeded point
            kills_mid_stream += not producing.done()
            await worker.kill()
        await producing
        final = settings.model_copy(update={"replay_until": history.until})
        worker = WorkerProcess(final, str(tmp_path / "final.log"))
        await worker.start()
        await wait_caught_up(final, [worker], timeout=180)
    finally:
        await worker.stop()
        if not producing.done():
            producing.cancel()
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    assert kills_mid_stream >= 3, "the kills did not fall while events were arriving"
    print(f"\n4 SIGKILLs; {len(outcome.alerts)} alerts, {outcome.repeats()} repeats (same key)")


@pytest.mark.xfail(
    strict=False,
    reason="open: in a CI-like run from a clean clone, the [first] case lost one customer's "
    "timer checkpoints after the rebalance (6 segment_changed keys of cust-000316 missing against "
    "the clean run); it passed in the runs before. Issue 7 stays open until both SIGKILL tests "
    "pass every time.",
)
@pytest.mark.parametrize("victim", ["first", "second"])
async def test_second_worker_joins_mid_stream_then_one_is_killed(
    base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, victim: str
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    history = _history()
    reference = await _reference(base_settings, tmp_path)
    settings = fault_settings(base_settings, history)
    await publish_models(settings, history)
    await produce_messages(settings, history.messages)  # a backlog: the workers are under load
    total = len(history.messages)
    first = WorkerProcess(settings, str(tmp_path / "first.log"))
    second = WorkerProcess(settings, str(tmp_path / "second.log"))
    try:
        await first.start()
        await _consumed_at_least(first, total // 5)
        await second.start()
        await second.wait_ready()  # the group rebalanced: partitions moved to the second
        await asyncio.sleep(random.Random(SEED).uniform(0.3, 1.5))
        await (first if victim == "first" else second).kill()
        await wait_caught_up(settings, [first, second], timeout=180)
    finally:
        await first.stop()
        await second.stop()
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    print(f"\n{victim} killed; {len(outcome.alerts)} alerts, {outcome.repeats()} repeats")
