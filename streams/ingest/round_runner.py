"""One round of the ingest loop, in two halves that overlap with the next round's.

:meth:`RoundRunner.submit` pops the customers whose due time the watermark passed and sends the
round's reads and released events to Redis without waiting for the answers;
:meth:`RoundRunner.complete` reads the answers (applying the round again if they were lost),
walks every customer of the round through its timeline (:mod:`streams.round.scorer`), drops
what belongs to partitions revoked meanwhile (:mod:`streams.ingest.handover`) and hands the
rest to the round's checkpoint (:mod:`streams.ingest.checkpoint`: save, publish, commit).
The ingest service (:mod:`streams.ingest.service`) fetches, feeds the event clock and calls
the two halves; this module keeps the books that span rounds: which partitions to sweep, what
the last save wrote.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from typing import TypeVar

from aiokafka import TopicPartition

from crm_core.errors import StateStoreError
from crm_core.settings import Settings
from scorers.timeline import CustomerState
from streams.ingest.checkpoint import CommitQueue, Outputs, RoundCheckpoint, RoundOutcome
from streams.ingest.clock import EventClock
from streams.ingest.handover import PartitionOwnership, drop_revoked
from streams.ingest.metrics import PipelineMetrics
from streams.ingest.records import Accepted, IngestStats, ParsedBatch, PipelineProcessor
from streams.round.scorer import round_scorer
from streams.state.erasure import ErasedCustomers
from streams.state.retry import RedisSteps
from streams.state.round_store import PendingRound, RoundStore

__all__ = ["RoundRunner", "SubmittedRound", "walk_limit"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def walk_limit(watermark: float) -> int:
    """The last whole second whose events have all been released: what a round walks up to.

    The clock runs on exact event times (so an event leaves as soon as the watermark passes it,
    not at the next whole second), while checkpoints fall on whole seconds and come after the
    events of their second. Released events are strictly before the watermark, so second ``S``
    is complete once the watermark reaches ``S + 1``.

    >>> walk_limit(1000.0), walk_limit(1000.5)
    (999, 999)
    """
    return math.floor(watermark) - 1


@dataclass(frozen=True, slots=True)
class SubmittedRound:
    """A round sent to Redis, answers not read yet."""

    parsed: ParsedBatch
    items: list[tuple[Accepted, bool]]  # (event, late)
    watermarks: dict[int, float]
    limits: dict[int, int]
    popped: set[int]
    sent: PendingRound
    commits: dict[TopicPartition, int]
    sent_at: float
    generation: int  # revocations before its events were released


class RoundRunner:
    """Submits and completes a worker's rounds (see the module doc).

    ``clock`` is the worker's event clock (read here, fed by the service); ``stopping`` ends
    the Redis retries when the service stops.
    """

    def __init__(
        self,
        settings: Settings,
        rounds: RoundStore,
        clock: EventClock[Accepted],
        erased: ErasedCustomers,
        stats: IngestStats,
        metrics: PipelineMetrics,
        stopping: asyncio.Event,
    ) -> None:
        self.rounds = rounds
        self.processor = PipelineProcessor(settings)
        self.scorer = round_scorer(settings)
        self.ownership = PartitionOwnership()  # streams.ingest.handover
        self.steps = RedisSteps(metrics.redis_errors, stopping, log)
        self._clock = clock
        self._erased = erased  # their events are skipped
        self._stats = stats
        self._metrics = metrics
        self._to_pop: set[int] = set()  # partitions to sweep even if their watermark is still
        self._swept: dict[int, int] = {}  # partition -> last checkpoint limit swept
        self._last_states: dict[str, CustomerState] = {}

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis step until it succeeds (Redis may restart, fill up or turn read-only
        under us) or the service stops. The loop waits here, so nothing more is fetched
        meanwhile; /health says why (:attr:`steps`)."""
        return await self.steps.run(call)

    def assigned(self, partitions: Collection[int]) -> None:
        """New partitions: sweep their due customers in the next round."""
        self._to_pop |= set(partitions)

    def revoked(self, partitions: Collection[int]) -> None:
        """Partitions gone: nothing to sweep there any more."""
        self._to_pop -= set(partitions)
        for partition in partitions:
            self._swept.pop(partition, None)

    def to_sweep(self, moved: Collection[int]) -> set[int]:
        """The partitions whose due customers the next round pops: those whose walk limit
        moved (idle partitions' watermarks creep with the wall clock: once a second), and
        those marked since (taken)."""
        sweep = {p for p in moved if self.limit(p) != self._swept.get(p)} | self._to_pop
        self._to_pop.clear()
        return sweep

    def limit(self, partition: int) -> int | None:
        """:func:`walk_limit` of the partition's watermark, or None before it has one."""
        if partition not in self._clock.partitions:  # revoked while its round was finishing
            return None
        watermark = self._clock.watermark(partition)
        return None if watermark is None else walk_limit(watermark)

    def was_lost(self, round_: SubmittedRound) -> bool:
        """Whether the round's replies were lost (it is applied again when completed)."""
        return self.rounds.was_lost(round_.sent)

    async def submit(
        self,
        parsed: ParsedBatch,
        late: list[Accepted],
        released: list[Accepted],
        to_pop: set[int],
        generation: int,
    ) -> SubmittedRound:
        """Pop what is due and send the round's reads and events to Redis (not awaited)."""
        clock = self._clock
        async with self.ownership.lock:
            watermarks = {p: w for p in clock.partitions if (w := clock.watermark(p)) is not None}
            limits = {p: walk_limit(w) for p, w in watermarks.items()}
            pop = {p: limits[p] for p in to_pop if p in limits}
            self._swept.update(pop)
            popped = await self.retrying(lambda: self.rounds.pop_due(pop)) if pop else {}
        self._metrics.set_due_backlog({p: len(names) for p, names in popped.items()})
        # Events of a partition revoked since their release are not applied: its next owner
        # reads them again.
        items = [(a, True) for a in late if a.record.partition in limits]
        items += [(a, False) for a in released if a.record.partition in limits]
        if self._erased.count:
            items, popped = self._skip_erased(items, popped)
        customers: dict[str, int] = {}
        for a, _ in items:
            customers[a.event.customer_id] = a.record.partition
        for partition, names in popped.items():
            for name in names:
                customers.setdefault(name, partition)
        sent = self.rounds.send(
            customers, [a.request for a, _ in items], [a.event for a, _ in items]
        )
        commits = {TopicPartition(t, p): o for (t, p), o in clock.commit_offsets().items()}
        return SubmittedRound(
            parsed, items, watermarks, limits, set(pop), sent, commits, time.perf_counter(),
            generation,
        )  # fmt: skip

    async def complete(
        self, round_: SubmittedRound, outputs: Outputs | None, commits: CommitQueue
    ) -> None:
        """Read the round's answers (redoing it if they were lost), walk, then save, publish
        to ``outputs`` (None: a rebuild, which publishes nothing) and queue the commit."""
        result = round_.parsed.result
        sent = round_.sent
        try:
            lost = self.rounds.was_lost(sent)  # sent on a connection that failed since
            before, outcomes = await self.rounds.collect(sent)
        except StateStoreError as exc:
            if not lost:
                self.steps.failed(exc)
            log.warning("%s; applying the round again", exc)
            before, outcomes = await self.retrying(
                lambda: self.rounds.load_and_apply(sent.customers, sent.requests, sent.cross_sell)
            )
        roundtrip = time.perf_counter() - round_.sent_at
        # The round's reads may have run before the previous round's save landed (it is on
        # another connection): that round's states are the current ones.
        for customer_id, state in self._last_states.items():
            known = before.get(customer_id)
            if known is not None:
                before[customer_id] = replace(known, state=state)
        applied = self.processor.settle(round_.items, outcomes)
        cross_sell = self.rounds.cross_sell_decide(applied)
        scored = self.scorer.score(applied, before, round_.limits)
        if cross_sell is not None:
            scored.alerts += cross_sell.alerts()
        used = {known.partition for known in before.values()} | round_.popped
        async with self.ownership.lock:  # the revocation hook waits until outputs are sent
            current = self.ownership.current(round_.generation, self._clock.partitions)
            owned = used & current
            # Counted like saved: only on partitions the round may still write (fenced).
            self.processor.account(round_.items, outcomes, result, current)
            result.only(current)
            if owned != used:
                recovery = self.rounds.recovery
                scored, applied = drop_revoked(scored, applied, before, owned, recovery)
            outcome = RoundOutcome(
                scored,
                applied,
                cross_sell,
                {p: round_.watermarks[p] for p in owned},
                # Never a stale partition's offsets: the events the dropped part applied must
                # be read again.
                {tp: o for tp, o in round_.commits.items() if tp.partition in current},
                result,
                roundtrip,
            )
            await self._checkpoint(round_, outcome, outputs, commits)

    async def _checkpoint(
        self,
        round_: SubmittedRound,
        outcome: RoundOutcome,
        outputs: Outputs | None,
        commits: CommitQueue,
    ) -> None:
        """Save, publish and commit the round, keeping the worker's books between the steps."""
        checkpoint = RoundCheckpoint(outcome, self.rounds, self.retrying, outputs)
        await checkpoint.save()
        self.steps.recovered()
        if self.rounds.retention_removed:
            self._metrics.removed.labels("retention").inc(self.rounds.retention_removed)
        self._last_states = outcome.scored.states
        for partition, items in outcome.scored.due.items():
            # A due time the next round's sweep popped past before this save landed.
            limit = self.limit(partition)
            if limit is not None and any(t is not None and t <= limit for _, t in items):
                self._to_pop.add(partition)
        self._stats.add(outcome.result)
        await checkpoint.publish()
        self._stats.examples += len(outcome.scored.examples)
        assigned = {p: w for p, w in round_.watermarks.items() if p in self._clock.partitions}
        self._metrics.set_clock(assigned, self._clock.buffered, time.time())  # some revoked
        await checkpoint.commit(commits)

    def _skip_erased(
        self, items: list[tuple[Accepted, bool]], popped: dict[int, list[str]]
    ) -> tuple[list[tuple[Accepted, bool]], dict[int, list[str]]]:
        """The round without erased customers: their events are counted (reason ``erased``),
        not applied and not dead-lettered; their timers are dropped."""
        erased = self._erased.erased
        kept = [(a, late) for a, late in items if not erased(a.event.customer_id)]
        skipped = len(items) - len(kept)
        if skipped:
            self._stats.skipped["erased"] += skipped
            self._metrics.skipped.labels("erased").inc(skipped)
        return kept, {p: [c for c in names if not erased(c)] for p, names in popped.items()}
