"""Fault tests that kill workers (shared Kafka and Redis): SIGKILL at seeded random points with
restarts, and two workers in one group with the second joining mid-stream and one killed.

Both end with the profiles equal to a batch recomputation and the alert states, due-index and
alert idempotency keys equal to a clean run's (see :mod:`tests.integration.histories`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from streams.ingest.topics import ensure_topics
from streams.round.messages import OutputMessage
from streams.state.due_index import DueIndex
from streams.state.outbox import OutputOutbox
from streams.state.profiles import connect_redis
from tests.integration.harness import WorkerProcess, wait_caught_up
from tests.integration.histories import (
    SEED,
    History,
    Outcome,
    assert_matches_clean,
    consumed_at_least,
    fault_settings,
    owns_all,
    publish_models,
    read_all,
    read_outcome,
    standard_history,
    standard_reference,
)

pytestmark = pytest.mark.integration
T = TypeVar("T")
KILL_LATENESS = 20 * 86_400.0  # ~1.3 s of wall time at the stream's pace


def _history() -> History:
    return standard_history()


async def _reference(base: Settings, tmp_path: Path) -> Outcome:
    return await standard_reference(base, tmp_path / "clean.log")


def _chunks(messages: Sequence[T], n: int) -> list[Sequence[T]]:
    size = -(-len(messages) // n)
    return [messages[i : i + size] for i in range(0, len(messages), size)]


async def test_sigkill_at_seeded_points_while_producing(
    base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")  # fixed model versions, as the clean run
    history = _history()
    reference = await _reference(base_settings, tmp_path)
    # Until the input is complete the worker must not jump its clock to the history's end.
    # The history is produced while the worker runs, compressed (~15 days of event time per
    # second): a 2-day lateness is ~130 ms of wall time, so a scheduling hiccup makes events
    # late. This test is about kills; an event arriving later than the lateness within a
    # round's apply-to-save window is the gap README "Reliability and scale" describes.
    settings = fault_settings(
        base_settings, history, replay_until=None, allowed_lateness_seconds=KILL_LATENESS
    )
    await publish_models(settings, history)
    # Each of the four lives gets a fifth of the stream, sent while it runs (~3 s per chunk),
    # and is killed at a seeded point inside that chunk; the last fifth goes to the final one.
    chunks = _chunks(history.messages, 5)
    rate = len(chunks[0]) / 3.0
    rnd = random.Random(SEED)
    worker = WorkerProcess(settings, str(tmp_path / "killed.log"))
    kills_mid_stream = 0
    producing: asyncio.Task[object] | None = None
    try:
        for chunk in chunks[:4]:
            await worker.start()
            await worker.wait_ready()
            producing = asyncio.create_task(produce_messages(settings, chunk, rate=rate))
            await asyncio.sleep(rnd.uniform(0.3, 2.5))  # into its rounds, at a seeded point
            kills_mid_stream += not producing.done()
            await worker.kill()
            await producing
        await produce_messages(settings, chunks[4])
        final = settings.model_copy(update={"replay_until": history.until})
        worker = WorkerProcess(final, str(tmp_path / "final.log"))
        await worker.start()
        await wait_caught_up(final, [worker], timeout=180)
    finally:
        await worker.stop()
        if producing is not None and not producing.done():
            producing.cancel()
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    assert kills_mid_stream == 4, "the kills did not fall while events were arriving"
    print(f"\n4 SIGKILLs; {len(outcome.alerts)} alerts, {outcome.repeats()} repeats (same key)")


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
        await consumed_at_least(first, total // 5)
        await second.start()
        await second.wait_ready()  # the group rebalanced: partitions moved to the second
        await asyncio.sleep(random.Random(SEED).uniform(0.3, 1.5))
        await (first if victim == "first" else second).kill()
        # Caught up (lag 0) is not enough: the dead worker may have committed everything and
        # still left timers parked. Its partitions go to the survivor once the group notices.
        await owns_all(second if victim == "first" else first, settings)
        await wait_caught_up(settings, [first, second], timeout=180)
    finally:
        await first.stop()
        await second.stop()
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    print(f"\n{victim} killed; {len(outcome.alerts)} alerts, {outcome.repeats()} repeats")


async def test_outputs_a_dead_worker_saved_but_kafka_never_acked_are_published_again(
    base_settings: Settings, tmp_path: Path
) -> None:
    """The window between a round's save and Kafka's acknowledgement: what a worker killed
    there left in the outbox is published by the partition's next owner, then deleted."""
    settings = fault_settings(base_settings, _history())
    await ensure_topics(settings)
    client = connect_redis(settings)
    dead = OutputOutbox(DueIndex(client, settings.redis_key_prefix))
    snapshot = OutputMessage(1, b"cust-x", b'{"customer_id":"cust-x","trigger":"event"}')
    example = OutputMessage(1, b"cust-x", b'{"idempotency_key":"churn:cust-x:1"}')
    try:
        for _, key, field, blob in dead.write_commands([snapshot], [example]):
            assert isinstance(blob, bytes)
            await client.hset(str(key), str(field), blob)
        worker = WorkerProcess(settings, str(tmp_path / "next-owner.log"))
        await worker.start()
        try:
            await worker.wait_ready()
            for _ in range(150):
                if not await client.hlen(dead.key(1)):
                    break
                await asyncio.sleep(0.2)
            assert not await client.hlen(dead.key(1)), worker.log_tail()
        finally:
            await worker.stop()
    finally:
        await client.aclose()
    assert await read_all(settings, "scores") == [snapshot.value]
    assert await read_all(settings, "training") == [example.value]
