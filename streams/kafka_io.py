"""Kafka plumbing of the ingest service: batched publishing, rebalance hooks, and keeping the
event clock told where each topic-partition is (and pausing the ones running ahead)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from streams.pipeline import OutputMessage
from streams.reorder import EventClock

__all__ = ["RebalanceHooks", "align", "publish", "track_positions"]

Hook = Callable[[set[TopicPartition]], Awaitable[None]]


async def publish(
    producer: AIOKafkaProducer, topic: str, messages: Iterable[OutputMessage]
) -> list[asyncio.Future[Any]]:
    """Send messages in as few record batches as possible, per partition; delivery futures.

    Outputs keep the input's partition number: the topics have the same partition count and
    key (customer id), so that is the partition Kafka's default partitioner would choose.
    """
    batches: dict[int, Any] = {}
    futures: list[asyncio.Future[Any]] = []
    for message in messages:
        batch = batches.get(message.partition)
        if batch is None:
            batch = batches[message.partition] = producer.create_batch()
        if batch.append(key=message.key, value=message.value, timestamp=None) is None:
            futures.append(await producer.send_batch(batch, topic, partition=message.partition))
            batch = batches[message.partition] = producer.create_batch()
            batch.append(key=message.key, value=message.value, timestamp=None)
    for partition, batch in batches.items():
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


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
