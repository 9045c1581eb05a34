"""Partitions moving between workers (streams.ingest.handover), without Kafka or Redis: which
partitions a finishing round may still write, the part of a round dropped when one moved, and
what a new owner publishes again of what the previous one left unacknowledged.

The broker is a recording fake (tests/unit/streams/ingest/fakes.py) and the recovery
bookkeeping the real one; tests/integration/faults/test_kill.py moves partitions under real
workers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TypeVar, cast

import pytest
import redis.asyncio as aioredis
from aiokafka.errors import KafkaTimeoutError

from crm_core.settings import Settings
from schemas import PurchaseEvent, example_event_dict
from scorers.profile import Profile, ProfileDelta
from scorers.timeline import CustomerState
from streams.ingest.handover import PartitionOwnership, drop_revoked, publish_left_over
from streams.round.messages import Applied, OutputMessage
from streams.round.scorer import CustomerBefore, ScoredRound
from streams.state.due_index import DueIndex
from streams.state.keys import Layout
from streams.state.profiles import ApplyOutcome, ApplyRequest, ApplyResult
from streams.state.recovery import RoundRecovery, claim_confirmation
from streams.state.resp import Command
from streams.state.round_store import RoundStore
from tests.unit.hand_built import Record
from tests.unit.streams.ingest.fakes import FakeProducer

T = TypeVar("T")
KEYS = Layout("t")
SETTINGS = Settings(topic_prefix="t.")


def test_a_round_released_before_a_revocation_is_stale_there_even_when_it_comes_back() -> None:
    ownership = PartitionOwnership()
    released = ownership.generation
    ownership.revoked({1})  # the eager protocol revokes and gives partition 1 back
    assert ownership.current(released, {0, 1, 2}) == {0, 2}
    assert ownership.current(ownership.generation, {0, 1, 2}) == {0, 1, 2}  # released after
    later = ownership.generation
    ownership.revoked({2})
    assert ownership.current(later, {0, 1, 2}) == {0, 1}
    assert ownership.current(released, {0, 1, 2}) == {0}


def _applied(customer: str, partition: int) -> Applied:
    raw = example_event_dict("order_placed")
    raw.update(customer_id=customer, event_id=f"e-{customer}")
    event = PurchaseEvent.model_validate(raw)
    return Applied(Record(partition=partition, key=customer.encode()), event, Profile(), 0.0, False)


def _message(partition: int, customer: str) -> OutputMessage:
    return OutputMessage(partition, customer.encode(), customer.encode())


def test_dropping_revoked_partitions_keeps_the_owned_part_and_leaves_the_rest_journaled() -> None:
    recovery = RoundRecovery("t", DueIndex(aioredis.Redis(), "t"))  # never connects
    on = {"a": 0, "b": 1, "c": 2}
    recovery.note_applied(
        [ApplyRequest(c, "purchase", 5, f"e-{c}", 0, ProfileDelta()) for c in on],
        [ApplyResult(ApplyOutcome.APPLIED, Profile(), 1)] * 3,
    )
    scored = ScoredRound(
        snapshots=[_message(p, c) for c, p in on.items()],
        alerts=[(c, f"k-{c}", _message(p, c)) for c, p in on.items()],
        states={c: CustomerState() for c in on},
        due={p: [(c, 1.0)] for c, p in on.items()},
        timer_checkpoints=4,
        examples=[_message(p, c) for c, p in on.items()],
    )
    before = {c: CustomerBefore(None, CustomerState(), p) for c, p in on.items()}
    applied = [_applied(c, p) for c, p in on.items()]

    kept, kept_applied = drop_revoked(scored, applied, before, {0, 2}, recovery)

    assert [m.key for m in kept.snapshots] == [b"a", b"c"]
    assert [a[0] for a in kept.alerts] == ["a", "c"]
    assert set(kept.states) == {"a", "c"} and set(kept.due) == {0, 2}
    assert [m.key for m in kept.examples] == [b"a", b"c"]
    assert [a.event.customer_id for a in kept_applied] == ["a", "c"]
    assert recovery.marks() == {"a": 1, "c": 1}  # b's events stay for its next owner


class FakeRounds:
    """The round store's part :func:`publish_left_over` uses, with preset unsent outputs."""

    def __init__(self, unsent: list[tuple[dict[str, list[OutputMessage]], list[Command]]]) -> None:
        self.recovery = RoundRecovery("t", DueIndex(aioredis.Redis(), "t"))  # never connects
        self._unsent = unsent
        self.asked: list[list[int]] = []
        self.ran: list[Sequence[Command]] = []

    async def unsent_outputs(
        self, partitions: Collection[int]
    ) -> list[tuple[dict[str, list[OutputMessage]], list[Command]]]:
        self.asked.append(sorted(partitions))
        return self._unsent

    async def run(self, commands: Sequence[Command]) -> None:
        self.ran.append(commands)


async def _once(call: Callable[[], Awaitable[T]]) -> T:
    return await call()


async def _left_over(
    rounds: FakeRounds,
    producer: FakeProducer,
    again: dict[int, list[tuple[str, str, bytes]]],
) -> None:
    await publish_left_over(cast(RoundStore, rounds), producer, SETTINGS, {3, 4}, again, _once)


async def test_a_new_owner_publishes_unconfirmed_alerts_and_confirms_them_once_acknowledged() -> (
    None
):
    rounds, producer = FakeRounds([]), FakeProducer()
    again = {3: [("a", "k1", b"alert-a"), ("b", "k2", b"alert-b")]}
    await _left_over(rounds, producer, again)
    assert producer.sent == [("t.alerts", 3, [(b"a", b"alert-a"), (b"b", b"alert-b")])]
    confirm = rounds.recovery.confirm_commands()
    assert claim_confirmation(KEYS.alert_claims("a"), "k1") in confirm
    assert ("HDEL", KEYS.alert_outbox(3), "b\x00k2") in confirm
    assert rounds.asked == [[3, 4]] and rounds.ran == []


async def test_unsent_outputs_are_deleted_only_after_kafka_acknowledged_them() -> None:
    drops: list[Command] = [("HDEL", "t:{due:4}:oo", "s1")]
    outputs = {"scores": [_message(4, "a")], "training": [_message(4, "b")]}
    rounds, producer = FakeRounds([(outputs, drops)]), FakeProducer()
    await _left_over(rounds, producer, {})
    assert producer.values("t.scores") == [b"a"] and producer.values("t.training") == [b"b"]
    assert rounds.ran == [drops]


async def test_outputs_kafka_refuses_stay_in_the_outbox() -> None:
    drops: list[Command] = [("HDEL", "t:{due:4}:oo", "s1")]
    rounds = FakeRounds([({"scores": [_message(4, "a")]}, drops)])
    with pytest.raises(KafkaTimeoutError):
        await _left_over(rounds, FakeProducer(refuse=frozenset({"t.scores"})), {})
    assert rounds.ran == []  # the next owner publishes them again


async def test_an_alert_kafka_refused_is_not_confirmed() -> None:
    rounds, producer = FakeRounds([]), FakeProducer(refuse=frozenset({"t.alerts"}))
    await _left_over(rounds, producer, {3: [("a", "k1", b"alert-a")]})
    assert rounds.recovery.confirm_commands() == []  # its claim stays pending
