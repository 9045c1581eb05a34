"""A round's checkpoint: save it to Redis, publish its outputs, then queue its offsets' commit.

The order is what makes a round's outputs at-least-once and its state effectively-once
(docs/ARCHITECTURE.md, "Invariants"): nothing is published before Redis holds the states, due
times and alert claims it was decided from (and the outboxes a new owner publishes again from),
and no offset is committed before Kafka acknowledged every output of the round. One
:class:`RoundCheckpoint` per round owns that order; its :attr:`~RoundCheckpoint.stage` says how
far it got, and a step asked for out of turn raises :class:`CheckpointOutOfOrder` instead of
writing anything.

A step that fails leaves the stage where it was: a save Redis refuses is retried (the
``retrying`` callable) until it goes through or the service stops, and then nothing was
published or committed; a publish Kafka refuses leaves the round saved but not committed, so
its events are read again after a restart and its outputs come again from the outboxes.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaProducer, TopicPartition

from crm_core.errors import CrmScoringError
from crm_core.settings import Settings
from streams.ingest.kafka_io import publish, publish_dead_letters
from streams.ingest.quarantine import Quarantine
from streams.ingest.records import BatchResult
from streams.round.messages import Applied, OutputMessage
from streams.round.scorer import ScoredRound
from streams.state.cross_sell_counts import CrossSellDecision
from streams.state.recovery import RoundRecovery

__all__ = [
    "CheckpointOutOfOrder",
    "CheckpointStore",
    "CommitQueue",
    "KafkaOutputs",
    "Outputs",
    "RoundCheckpoint",
    "RoundOutcome",
    "Stage",
]

T = TypeVar("T")
Deliveries = list[asyncio.Future[Any]]


class Stage(enum.Enum):
    """How far a round's checkpoint got; each step moves it one stage on."""

    PENDING = "pending"  # decided by the walk, nothing written yet
    SAVED = "saved"  # states, due times, alert claims, outboxes and watermarks are in Redis
    PUBLISHED = "published"  # outputs handed to Kafka (none in a rebuild)
    COMMITTED = "committed"  # offsets queued to commit behind the acknowledgements


class CheckpointOutOfOrder(CrmScoringError):
    """A checkpoint step was asked for before the one it follows (or twice): a bug in the
    caller. Call ``save``, ``publish`` and ``commit`` once each, in that order."""


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """What a round decided, and what its checkpoint writes, publishes and commits.

    ``watermarks`` and ``commits`` are already cut to the partitions the round may still
    write (:mod:`streams.ingest.handover`): a revoked partition's offsets are never committed,
    so its next owner reads those events again.
    """

    scored: ScoredRound
    applied: list[Applied]
    cross_sell: CrossSellDecision | None
    watermarks: dict[int, float]
    commits: dict[TopicPartition, int]
    result: BatchResult
    roundtrip: float  # seconds from sending the round to Redis to reading its answers


class Retrying(Protocol):
    """Runs a Redis step until it goes through (:class:`streams.state.retry.RedisSteps`)."""

    async def __call__(self, call: Callable[[], Awaitable[T]]) -> T: ...


#: ``RoundStore.save``: write a round's states, due times, claims and watermarks; per alert,
#: whether it is new (publish it).
SaveRound = Callable[
    [ScoredRound, Mapping[int, float], Sequence[Applied], CrossSellDecision | None],
    Awaitable[list[bool]],
]


class CheckpointStore(Protocol):
    """The Redis side of a checkpoint (:class:`streams.state.round_store.RoundStore`)."""

    @property
    def recovery(self) -> RoundRecovery: ...

    @property
    def save(self) -> SaveRound: ...

    @property
    def record_alerts(self) -> Callable[[Sequence[tuple[str, str, bytes]]], Awaitable[None]]: ...


class Outputs(Protocol):
    """Where a round's outputs go (:class:`KafkaOutputs`); each call returns the deliveries."""

    async def publish(self, name: str, messages: Iterable[OutputMessage]) -> Deliveries: ...

    async def publish_dead_letters(self, messages: Iterable[OutputMessage]) -> Deliveries: ...


class CommitQueue(Protocol):
    """Commits offsets behind deliveries, in round order
    (:class:`streams.ingest.kafka_io.OrderedCommits`)."""

    @property
    def add(
        self,
    ) -> Callable[[Deliveries, dict[TopicPartition, int], BatchResult, float], Awaitable[None]]: ...


class KafkaOutputs:
    """The worker's outputs: scores, training examples and alerts on the idempotent producer,
    dead letters on the other one (a batch Kafka refuses goes to ``quarantine``)."""

    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        dead_letter_producer: AIOKafkaProducer,
        quarantine: Quarantine,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._dead_letter_producer = dead_letter_producer
        self._quarantine = quarantine

    async def publish(self, name: str, messages: Iterable[OutputMessage]) -> Deliveries:
        """Send ``messages`` to the topic called ``name`` (``scores``, ``alerts``, ...)."""
        return await publish(self._producer, self._settings.topic(name), messages)

    async def publish_dead_letters(self, messages: Iterable[OutputMessage]) -> Deliveries:
        """Send dead letters; a refused batch is quarantined and counts as delivered."""
        topic = self._settings.topic("deadletter")
        return await publish_dead_letters(
            self._dead_letter_producer, topic, messages, self._quarantine
        )


class RoundCheckpoint:
    """Owns the order save -> publish -> commit of one round (see the module doc).

    ``outputs`` None is a rebuild (``crm-score rebuild``): it saves and commits but publishes
    nothing. :attr:`stage` is where the checkpoint stands.
    """

    def __init__(
        self,
        outcome: RoundOutcome,
        store: CheckpointStore,
        retrying: Retrying,
        outputs: Outputs | None,
    ) -> None:
        self.outcome = outcome
        self.stage = Stage.PENDING
        self._store = store
        self._retrying = retrying
        self._outputs = outputs
        self._alerts: list[OutputMessage] = []  # the new ones: published
        self._claimed: list[tuple[int, str, str]] = []  # their (partition, customer, key)
        self._recent: list[tuple[str, str, bytes]] = []  # their (customer, type, JSON)
        self._deliveries: Deliveries = []

    async def save(self) -> None:
        """Write the round to Redis (retried until it goes through or the service stops),
        keep the alerts it claimed first, and count them and the round's outputs in the
        round's result."""
        self._expect(Stage.PENDING, "save")
        o = self.outcome
        fresh = await self._retrying(
            lambda: self._store.save(o.scored, o.watermarks, o.applied, o.cross_sell)
        )
        for (customer, key, message), new in zip(o.scored.alerts, fresh, strict=True):
            if new:
                kind = key.split(":", 1)[0]  # idempotency keys start with the rule
                self._alerts.append(message)
                self._claimed.append((message.partition, customer, key))
                self._recent.append((customer, kind, message.value))
                o.result.alerts_by_type[kind] += 1
        o.result.snapshots = o.scored.snapshots
        o.result.timer_checkpoints = o.scored.timer_checkpoints
        self.stage = Stage.SAVED

    async def publish(self) -> None:
        """Add the new alerts to the query API's recent alerts, then send the snapshots,
        training examples, alerts and dead letters; the outboxes drop what Kafka
        acknowledges, and the alerts' claims are confirmed once acknowledged."""
        self._expect(Stage.SAVED, "publish")
        if self._recent:
            recent = self._recent
            await self._retrying(lambda: self._store.record_alerts(recent))
        if self._outputs is not None:
            o, recovery = self.outcome, self._store.recovery
            outputs = await self._outputs.publish("scores", o.result.snapshots)
            outputs += await self._outputs.publish("training", o.scored.examples)
            recovery.outputs.sent(outputs)
            acks = await self._outputs.publish("alerts", self._alerts)
            recovery.published(acks, self._claimed)
            letters = await self._outputs.publish_dead_letters(o.result.dead_letters)
            self._deliveries = outputs + acks + letters
        self.stage = Stage.PUBLISHED

    async def commit(self, queue: CommitQueue) -> None:
        """Queue the round's offsets to commit once every delivery of it (and of every
        earlier round) is acknowledged."""
        self._expect(Stage.PUBLISHED, "commit")
        o = self.outcome
        await queue.add(self._deliveries, o.commits, o.result, o.roundtrip)
        self.stage = Stage.COMMITTED

    def _expect(self, stage: Stage, step: str) -> None:
        if self.stage is not stage:
            raise CheckpointOutOfOrder(
                f"checkpoint step {step!r} needs stage {stage.value!r}, the round is "
                f"{self.stage.value!r}: call save, publish and commit once each, in that order"
            )
