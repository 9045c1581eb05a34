"""Kafka plumbing of the ingest service: batched publishing, in-order commits behind the
acknowledgements, rebalance hooks, and keeping the event clock told where each topic-partition
is (and pausing the ones running ahead)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from streams.ingest.clock import EventClock
from streams.ingest.metrics import PipelineMetrics
from streams.ingest.quarantine import Quarantine
from streams.ingest.records import BatchResult
from streams.round.messages import OutputMessage

__all__ = [
    "BrokerWatch",
    "OrderedCommits",
    "RebalanceHooks",
    "align",
    "append_time_bound",
    "assignment_status",
    "consumer_lags",
    "publish",
    "publish_dead_letters",
    "track_positions",
]

log = logging.getLogger(__name__)
_LOG_APPEND_TIME = 1  # a record's timestamp_type when the broker stamped it

Hook = Callable[[set[TopicPartition]], Awaitable[None]]


async def publish(
    producer: AIOKafkaProducer, topic: str, messages: Iterable[OutputMessage]
) -> list[asyncio.Future[Any]]:
    """Send messages in as few record batches as possible, per partition; delivery futures.

    Outputs keep the input's partition number: the topics have the same partition count and
    key (customer id), so that is the partition Kafka's default partitioner would choose.
    """
    return [future for future, _ in await _send_batches(producer, topic, messages)]


async def publish_dead_letters(
    producer: AIOKafkaProducer,
    topic: str,
    messages: Iterable[OutputMessage],
    quarantine: Quarantine,
) -> list[asyncio.Future[Any]]:
    """:func:`publish`, but a batch Kafka refuses goes to ``quarantine`` and counts as done, so
    no dead letter can hold a round's commit back.

    ``producer`` must not be idempotent: once a batch fails, an idempotent producer's sequence
    numbers for the partition have a gap and it refuses every later batch to it
    (``OutOfOrderSequenceNumber``).
    """
    return [
        asyncio.ensure_future(_delivered_or_quarantined(future, topic, batch, quarantine))
        for future, batch in await _send_batches(producer, topic, messages)
    ]


async def _delivered_or_quarantined(
    delivery: asyncio.Future[Any],
    topic: str,
    messages: list[OutputMessage],
    quarantine: Quarantine,
) -> None:
    try:
        await delivery
    except KafkaError as exc:
        await quarantine.put(topic, messages, exc)


async def _send_batches(
    producer: AIOKafkaProducer, topic: str, messages: Iterable[OutputMessage]
) -> list[tuple[asyncio.Future[Any], list[OutputMessage]]]:
    """Send per-partition record batches; each batch's delivery future and its messages."""
    batches: dict[int, tuple[Any, list[OutputMessage]]] = {}
    sent: list[tuple[asyncio.Future[Any], list[OutputMessage]]] = []
    for message in messages:
        if message.partition not in batches:
            batches[message.partition] = (producer.create_batch(), [])
        batch, held = batches[message.partition]
        if batch.append(key=message.key, value=message.value, timestamp=None) is None:
            sent.append(
                (await producer.send_batch(batch, topic, partition=message.partition), held)
            )
            batch, held = batches[message.partition] = (producer.create_batch(), [])
            batch.append(key=message.key, value=message.value, timestamp=None)
        held.append(message)
    for partition, (batch, held) in batches.items():
        if batch.record_count():
            sent.append((await producer.send_batch(batch, topic, partition=partition), held))
    return sent


class RebalanceHooks(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base class
    """Calls ``on_assigned`` / ``on_revoked`` with the partitions of a rebalance."""

    def __init__(self, on_assigned: Hook, on_revoked: Hook) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._on_assigned(set(assigned))


async def track_positions(
    consumer: AIOKafkaConsumer,
    clock: EventClock[Any],
    fetched: dict[TopicPartition, list[Any]],
    unpositioned: set[TopicPartition],
) -> None:
    """Tell the clock where each topic-partition is and where its log ends.

    ``unpositioned`` are newly assigned topic-partitions whose start position is asked of the
    consumer once (then emptied); after that, positions follow the fetched records.
    """
    for tp in list(unpositioned):
        if tp in consumer.assignment():
            clock.set_position(tp.topic, tp.partition, await consumer.position(tp))
        unpositioned.discard(tp)
    for tp, messages in fetched.items():
        if messages and tp.partition in clock.partitions:
            clock.set_position(tp.topic, tp.partition, messages[-1].offset + 1)
    for tp in consumer.assignment():
        if tp.partition in clock.partitions:
            clock.set_highwater(tp.topic, tp.partition, consumer.highwater(tp))


def align(consumer: AIOKafkaConsumer, clock: EventClock[Any], max_buffered: int) -> None:
    """Pause topics running ahead of a partition's lagging topic while its buffer holds more
    than ``max_buffered`` events (watermark alignment); resume them once it drains."""
    pause, resume = [], []
    for tp in consumer.assignment():
        if tp.partition not in clock.partitions:
            continue
        full = clock.buffered(tp.partition) > max_buffered
        if full and tp.topic in clock.ahead(tp.partition):
            pause.append(tp)
        else:
            resume.append(tp)
    paused = consumer.paused()
    if pause:
        consumer.pause(*pause)
    if resumable := [tp for tp in resume if tp in paused]:
        consumer.resume(*resumable)


class OrderedCommits:
    """Commits each round's offsets once Kafka acknowledged its outputs, in round order.

    Acknowledgements and commits run behind the next rounds; at most ``depth`` rounds wait for
    them, so a slow broker slows the loop down instead of piling rounds up.
    """

    def __init__(
        self, consumer: AIOKafkaConsumer, metrics: PipelineMetrics, depth: int = 2
    ) -> None:
        self._consumer = consumer
        self._metrics = metrics
        self._depth = depth
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._committed: dict[TopicPartition, int] = {}

    async def add(
        self,
        deliveries: list[asyncio.Future[Any]],
        commits: dict[TopicPartition, int],
        result: BatchResult,
        roundtrip: float,
    ) -> None:
        """Commit ``commits`` once ``deliveries`` and every earlier round are done."""
        previous = self._waiting[-1] if self._waiting else None
        self._waiting.append(
            asyncio.ensure_future(self._commit(deliveries, commits, previous, result, roundtrip))
        )
        while len(self._waiting) > self._depth:
            await self._waiting.popleft()

    async def drain(self) -> None:
        """Let every waiting round commit (before partitions or the consumer go)."""
        while self._waiting:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._waiting.popleft(), 10)

    def forget(self, revoked: Iterable[TopicPartition]) -> None:
        """Rebalance: what was committed for these is someone else's business now."""
        for tp in revoked:
            self._committed.pop(tp, None)

    async def _commit(
        self,
        deliveries: list[asyncio.Future[Any]],
        commits: dict[TopicPartition, int],
        previous: asyncio.Future[None] | None,
        result: BatchResult,
        roundtrip: float,
    ) -> None:
        await asyncio.gather(*deliveries)
        self._metrics.observe_batch(result, datetime.now(UTC), roundtrip)
        if previous is not None:
            await previous
        assigned = self._consumer.assignment()
        fresh = {
            tp: offset
            for tp, offset in commits.items()
            if tp in assigned and self._committed.get(tp) != offset
        }
        if not fresh:
            return
        try:
            await self._consumer.commit(fresh)
            self._committed.update(fresh)
        except (CommitFailedError, KafkaError) as exc:
            # The group rebalanced under us: whoever owns these partitions now re-reads them and
            # the store skips what was applied, so nothing is lost or counted twice.
            log.warning("offset commit failed (%s); the new owner will redeliver", exc)


def append_time_bound(timestamp_ms: int | None, timestamp_type: int, lead: float) -> float | None:
    """The latest event time (epoch seconds) a record may move the watermark to: its broker
    append time plus ``lead``; None when the producer chose the timestamp (CreateTime), which
    a producer with a fast clock moves as well."""
    if timestamp_type != _LOG_APPEND_TIME or timestamp_ms is None or timestamp_ms < 0:
        return None
    return timestamp_ms / 1000 + lead


async def assignment_status(
    consumer: AIOKafkaConsumer | None, topics: Sequence[str], partitions: int
) -> tuple[list[str], bool, list[str]]:
    """The assigned ``topic:partition`` names; whether every one is read to its end and each
    assigned partition number is assigned on every one of ``topics`` (a worker reads
    partition ``p`` of all of them); and what is wrong with the input topics as the client's
    metadata sees them (missing, or not ``partitions`` partitions): then it is not caught up."""
    assignment = consumer.assignment() if consumer is not None else set()
    problems = []
    for topic in topics:
        found = consumer.partitions_for_topic(topic) if consumer is not None else None
        if not found:
            problems.append(f"input topic {topic} does not exist (deleted?)")
        elif len(found) != partitions:
            problems.append(
                f"input topic {topic} has {len(found)} partitions, CRM_PARTITIONS={partitions}"
            )
    numbers = {tp.partition for tp in assignment}
    unassigned = [f"{t}:{p}" for t in topics for p in sorted(numbers)
                  if TopicPartition(t, p) not in assignment]  # fmt: skip
    problems += [f"not consuming {name}" for name in unassigned]
    caught_up = bool(assignment) and not problems
    for tp in assignment:
        assert consumer is not None
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            caught_up = False
    return sorted(f"{tp.topic}:{tp.partition}" for tp in assignment), caught_up, problems


async def consumer_lags(consumer: AIOKafkaConsumer) -> list[tuple[str, int, int]]:
    """(topic, partition, messages behind) of each assigned partition whose high-water mark
    the fetcher knows."""
    lags = []
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            lags.append((tp.topic, tp.partition, max(0, highwater - await consumer.position(tp))))
    return lags


class BrokerWatch:
    """How many Kafka brokers the consumer's cluster metadata lists (a broker that dies drops
    out of it once the controller fences it, ~10 s, and the client refreshes, every
    ``CRM_KAFKA_METADATA_MAX_AGE_SECONDS``), against the most it has listed since start.

    A replicated cluster keeps serving without one broker (``acks=all`` with
    ``min.insync.replicas=2`` of 3), so a missing broker makes the worker degraded, not
    unhealthy: /health names it and ``crm_kafka_brokers`` shows it, but stays 200."""

    def __init__(self) -> None:
        self.most = 0

    def observe(self, consumer: AIOKafkaConsumer | None) -> tuple[int, int]:
        """(brokers listed now, most listed so far); (0, 0) before any metadata."""
        # aiokafka has no public accessor for the metadata the client already holds.
        listed = len(consumer._client.cluster.brokers()) if consumer is not None else 0
        self.most = max(self.most, listed)
        return listed, self.most
