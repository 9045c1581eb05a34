"""A worker's rounds (streams.ingest.round_runner) without Kafka or Redis: which partitions a
round sweeps, what it sends, and how it finishes when its replies were lost or a partition was
revoked while it ran.

The event clock and the round's walk are the real ones; the round store is a recorder
(tests/unit/streams/ingest/fakes.py). tests/integration/faults/ runs the real thing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from crm_core.errors import StateStoreError
from crm_core.settings import Settings
from schemas import Event
from scorers.deltas import delta_for
from scorers.timeline import CustomerState
from streams.ingest.clock import EventClock
from streams.ingest.metrics import PipelineMetrics
from streams.ingest.records import Accepted, BatchResult, IngestStats, ParsedBatch
from streams.ingest.round_runner import RoundRunner, walk_limit
from streams.round.messages import Applied
from streams.round.scorer import CustomerBefore
from streams.state.erasure import ErasedCustomers
from streams.state.profiles import ApplyOutcome, ApplyRequest, ApplyResult, InFlight
from streams.state.round_store import PendingRound, RoundStore
from tests.unit.hand_built import DAY, T0, Record, profile_of, purchase_event
from tests.unit.streams.ingest.fakes import FakeCommits, FakeOutputs, FakeStore, Journal

SETTINGS = Settings(topic_prefix="t.", redis_key_prefix="t", allowed_lateness_seconds=0.0)
TOPIC = SETTINGS.topic("purchase")


class FakeRoundStore(FakeStore):
    """The round store's reads and applies: every event applied once, every customer new; the
    first ``lost`` collects fail as if the connection had dropped."""

    def __init__(self, journal: Journal, due: Mapping[int, list[str]], lost: int = 0) -> None:
        super().__init__(journal, [])
        self.due = due
        self.lost = lost
        self.retention_removed = 0  # no retention in these rounds
        self.popped: list[dict[int, int]] = []
        self.sent: list[PendingRound] = []
        self._customers: dict[str, int] = {}

    async def pop_due(self, limits: Mapping[int, int]) -> dict[int, list[str]]:
        self.popped.append(dict(limits))
        return {p: list(self.due.get(p, [])) for p in limits}

    def send(
        self, customers: Mapping[str, int], requests: Sequence[ApplyRequest], _: Iterable[Event]
    ) -> PendingRound:
        pending = PendingRound(dict(customers), list(requests), InFlight(0, 0, None))
        self.sent.append(pending)
        return pending

    def was_lost(self, pending: PendingRound) -> bool:
        return self.lost > 0

    async def collect(
        self, pending: PendingRound
    ) -> tuple[dict[str, CustomerBefore], list[ApplyResult]]:
        self._journal.append("collect")
        if self.lost:
            self.lost -= 1
            raise StateStoreError("Redis connection lost: the round's replies are gone")
        return self._answer(pending.customers, pending.requests)

    async def load_and_apply(
        self, customers: Mapping[str, int], requests: Sequence[ApplyRequest], *_: object
    ) -> tuple[dict[str, CustomerBefore], list[ApplyResult]]:
        self._journal.append("load_and_apply")
        return self._answer(customers, requests)

    def cross_sell_decide(self, applied: Sequence[Applied]) -> None:
        return None

    def _answer(
        self, customers: Mapping[str, int], requests: Sequence[ApplyRequest]
    ) -> tuple[dict[str, CustomerBefore], list[ApplyResult]]:
        before = {c: CustomerBefore(None, CustomerState(), p) for c, p in customers.items()}
        results = [
            ApplyResult(ApplyOutcome.APPLIED, profile_of(r.event_time), i + 1)
            for i, r in enumerate(requests)
        ]
        self.recovery.note_applied(requests, results)
        return before, results


def _clock(floors: Mapping[int, float]) -> EventClock[Accepted]:
    clock: EventClock[Accepted] = EventClock(SETTINGS.input_topics, 0.0, live=False, idle_after=1.0)
    clock.assign(floors, floors)
    for partition in floors:
        for topic in SETTINGS.input_topics:
            clock.set_position(topic, partition, 100 + partition)
    return clock


def _runner(store: FakeRoundStore, clock: EventClock[Accepted]) -> RoundRunner:
    return RoundRunner(
        SETTINGS,
        cast(RoundStore, store),
        clock,
        cast(ErasedCustomers, _NoneErased()),
        IngestStats(),
        PipelineMetrics(CollectorRegistry()),
        asyncio.Event(),
    )


class _NoneErased:
    count = 0


def _accepted(customer: str, partition: int, at: int, offset: int) -> Accepted:
    event = purchase_event(at, f"e-{customer}-{offset}").model_copy(
        update={"customer_id": customer}
    )
    request = ApplyRequest(
        customer, "purchase", offset, event.event_id, at, delta_for(event, SETTINGS.fx_rates)
    )
    record = Record(topic=TOPIC, partition=partition, offset=offset, key=customer.encode())
    return Accepted(record, event, request)


def _parsed(*accepted: Accepted) -> ParsedBatch:
    return ParsedBatch(BatchResult(consumed=len(accepted)), list(accepted))


def test_assigned_partitions_are_swept_and_a_limit_that_did_not_move_is_not_swept_again() -> None:
    clock = _clock({0: T0 + 10.0, 1: T0 + 10.0})
    runner = _runner(FakeRoundStore([], {}), clock)
    runner.assigned({0, 1})
    assert runner.to_sweep(set()) == {0, 1}  # taken: swept even though no watermark moved
    assert runner.to_sweep(set()) == set()
    assert runner.limit(0) == walk_limit(T0 + 10.0)
    runner.revoked({1})
    clock.revoke([1])
    assert runner.limit(1) is None  # revoked while a round finished
    assert runner.to_sweep({0, 1}) == {0}  # partition 0's limit was never swept


async def test_a_round_sends_its_released_events_and_the_customers_whose_timers_are_due() -> None:
    store = FakeRoundStore([], {0: ["due-0"], 1: ["due-1"]})
    clock = _clock({0: T0 + 10.0, 1: T0 + 20.0})
    runner = _runner(store, clock)
    late, now = _accepted("a", 0, T0 - DAY, 5), _accepted("b", 1, T0, 6)
    gone = _accepted("c", 7, T0, 7)  # partition 7 was revoked since its release

    submitted = await runner.submit(_parsed(late, now, gone), [late], [now, gone], {0, 1, 9}, 0)

    assert store.popped == [{0: walk_limit(T0 + 10.0), 1: walk_limit(T0 + 20.0)}]  # 9 has none
    (pending,) = store.sent
    assert pending.customers == {"a": 0, "b": 1, "due-0": 0, "due-1": 1}
    assert [r.offset for r in pending.requests] == [5, 6]  # late first; none of partition 7
    assert [late_flag for _, late_flag in submitted.items] == [True, False]
    assert submitted.commits == {
        TopicPartition(t, p): 100 + p for t in SETTINGS.input_topics for p in (0, 1)
    }


async def test_a_round_whose_replies_were_lost_is_applied_again_then_checkpointed() -> None:
    journal: Journal = []
    store = FakeRoundStore(journal, {}, lost=1)
    runner = _runner(store, _clock({0: T0 + DAY}))
    event = _accepted("a", 0, T0, 5)
    submitted = await runner.submit(_parsed(event), [], [event], set(), 0)
    outputs, commits = FakeOutputs(journal), FakeCommits(journal)

    await runner.complete(submitted, outputs, commits)

    assert journal[:3] == ["collect", "load_and_apply", "save"]  # applied again, saved once
    assert journal[3:-1] and all(step.startswith("publish ") for step in journal[3:-1])
    assert journal[-1] == "commit"
    assert [m.key for m in outputs.sent["scores"]] == [b"a"]
    assert store.saved == [{0: T0 + DAY}]


async def test_a_partition_revoked_while_the_round_ran_is_neither_saved_nor_committed() -> None:
    journal: Journal = []
    store = FakeRoundStore(journal, {})
    clock = _clock({0: T0 + DAY, 1: T0 + DAY})
    runner = _runner(store, clock)
    events = [_accepted("a", 0, T0, 5), _accepted("b", 1, T0, 6)]
    submitted = await runner.submit(
        _parsed(*events), [], events, set(), runner.ownership.generation
    )
    async with runner.ownership.lock:  # the revocation hook
        runner.ownership.revoked({1})
    clock.revoke([1])
    outputs, commits = FakeOutputs(journal), FakeCommits(journal)

    await runner.complete(submitted, outputs, commits)

    assert store.saved == [{0: T0 + DAY}]
    assert {m.partition for m in outputs.sent["scores"]} == {0}
    [(_, offsets)] = commits.added
    assert {tp.partition for tp in offsets} == {0}
    assert store.recovery.marks() == {"a": 1}  # b's journal entry is left for the next owner
    assert submitted.parsed.result.applied == 1  # b is counted by whoever redoes it
