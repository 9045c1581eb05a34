"""The ingest service: consume input topics in batches, apply, publish, then commit.

Why not a Faust agent per event: on this 2-core machine Faust's per-event stream machinery alone
caps an agent at ~11k events/s (measured in bench/pipeline.py), which is below what the Redis
path sustains. This service keeps Faust as the application (lifecycle, web pages, timers) and
reads the input topics with one aiokafka consumer per worker in its own consumer group, a whole
fetch at a time. Offsets are committed only after Redis applied the batch and the
outputs were acknowledged by Kafka (at-least-once out, effectively-once state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from mode import Service
from redis.exceptions import RedisError

from crm_score.errors import ModelError, StateStoreError
from crm_score.settings import Settings
from streams.lag import ingest_group
from streams.metrics import PipelineMetrics
from streams.models import PROBABILITY_MODEL, ModelRegistry, current_probability_model
from streams.pipeline import (
    BatchResult,
    OutputMessage,
    PipelineProcessor,
    PreparedBatch,
)
from streams.population import RFM_BOUNDARIES, current_rfm_boundaries
from streams.store import InFlight, RedisProfileStore, connect_redis
from streams.topics import ensure_topics

__all__ = ["IngestService", "IngestStats", "publish"]

log = logging.getLogger(__name__)


class IngestStats:
    """Running totals since start (also exported as Prometheus metrics)."""

    def __init__(self) -> None:
        self.consumed = 0
        self.applied = 0
        self.duplicates = 0
        self.dead_letters: Counter[str] = Counter()

    def add(self, result: BatchResult) -> None:
        self.consumed += result.consumed
        self.applied += result.applied
        self.duplicates += result.duplicates
        self.dead_letters.update(result.dead_letter_reasons)


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


class IngestService(Service):
    """Consumes purchase, service and marketing topics and runs :class:`PipelineProcessor`."""

    def __init__(
        self, settings: Settings, metrics: PipelineMetrics | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.stats = IngestStats()
        self.metrics = metrics if metrics is not None else PipelineMetrics()
        self._redis = connect_redis(settings)
        self._store = RedisProfileStore(self._redis, settings)
        self._processor = PipelineProcessor(settings, self._store)
        self._models = ModelRegistry(self._redis, settings.redis_key_prefix)
        self._model_version: int | None = None
        self._boundaries_version: int | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        self._committing: deque[asyncio.Future[None]] = deque()

    async def on_start(self) -> None:
        s = self.settings
        created = await ensure_topics(s)
        if created:
            log.info("created topics %s", ", ".join(created))
        common = {"bootstrap_servers": s.kafka_bootstrap, **s.kafka_client_options()}
        self._producer = AIOKafkaProducer(
            **common, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=1 << 20
        )
        self._consumer = AIOKafkaConsumer(
            *s.input_topics,
            **common,
            group_id=ingest_group(s),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=s.batch_max_records,
            fetch_max_bytes=16 << 20,
            max_partition_fetch_bytes=4 << 20,
            session_timeout_ms=int(s.broker_session_timeout * 1000),
            heartbeat_interval_ms=int(s.broker_heartbeat_interval * 1000),
            max_poll_interval_ms=300_000,
        )
        await self._producer.start()
        await self._consumer.start()
        await self._refresh_model()

    async def on_stop(self) -> None:
        self._stopping.set()
        while self._committing:  # let finished batches commit before the consumer goes
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._committing.popleft(), 10)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        await self._store.close()
        await self._redis.aclose()

    @Service.task
    async def _consume(self) -> None:
        consumer, producer = self._consumer, self._producer
        if consumer is None or producer is None:
            raise RuntimeError("IngestService._consume ran before on_start")
        try:
            await self._store.connect()
        except (OSError, TimeoutError) as exc:  # the retry path reconnects
            log.warning("Redis is not reachable yet (%r); retrying as batches arrive", exc)
        previous: _Pending | None = None
        while not self.should_stop:
            fetched = await consumer.getmany(
                timeout_ms=self.settings.batch_timeout_ms,
                max_records=self.settings.batch_max_records,
            )
            # Send this batch to Redis before finishing the previous one, so Redis applies it
            # while Python scores and publishes the previous batch.
            current = self._submit(fetched) if fetched else None
            if previous is not None:
                await self._complete(previous, consumer, producer)
            if current is not None and self._store.was_lost(current.in_flight):
                # Sent on a connection that failed since: re-apply it before sending anything
                # newer, so a customer's events are never applied out of order.
                await self._complete(current, consumer, producer)
                current = None
            previous = current

    async def health(self) -> dict[str, Any]:
        """Redis reachable, partitions assigned, totals so far; ``ok`` when Redis answers."""
        try:
            redis_ok = bool(await self._redis.ping())
        except Exception:
            redis_ok = False
        consumer = self._consumer
        partitions = consumer.assignment() if consumer is not None else set()
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)
        return {
            "ok": redis_ok,
            "redis": redis_ok,
            "assigned_partitions": assigned,
            "consumed": self.stats.consumed,
            "applied": self.stats.applied,
            "duplicates": self.stats.duplicates,
            "dead_letters": dict(self.stats.dead_letters),
            "probability_model_version": self._model_version,
            "rfm_boundaries_version": self._boundaries_version,
        }

    @Service.timer(5.0)
    async def _poll_model(self) -> None:
        await self._refresh_model()

    async def _refresh_model(self) -> None:
        """Hot-swap to the newest published probability model and RFM boundaries."""
        try:
            version = await self._models.current_version(PROBABILITY_MODEL)
            if version is not None and version != self._model_version:
                self._processor.model = await current_probability_model(self._models)
                self._model_version = version
                log.info("scoring with probability model version %s", version)
            version = await self._models.current_version(RFM_BOUNDARIES)
            if version is not None and version != self._boundaries_version:
                self._processor.boundaries = await current_rfm_boundaries(self._models)
                self._boundaries_version = version
                log.info("scoring RFM against boundaries version %s", version)
        except (RedisError, OSError, ModelError, ValueError) as exc:
            log.warning("could not load a published model (%r); keeping the current one", exc)

    @Service.timer(5.0)
    async def _export_lag(self) -> None:
        """Consumer lag per assigned partition, from the fetcher's high-water marks."""
        consumer = self._consumer
        if consumer is None:
            return
        lags = []
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                behind = max(0, highwater - await consumer.position(tp))
                lags.append((tp.topic, tp.partition, behind))
        self.metrics.set_lag(lags)

    def _submit(self, fetched: dict[TopicPartition, list[Any]]) -> _Pending:
        now = datetime.now(UTC)
        records = [m for messages in fetched.values() for m in messages]
        prepared = self._processor.prepare(records, now)
        commits = {tp: messages[-1].offset + 1 for tp, messages in fetched.items()}
        return _Pending(prepared, self._store.send(prepared.requests), commits)

    async def _complete(
        self, pending: _Pending, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer
    ) -> None:
        """Get the batch's results (re-applying it if they were lost), publish, then commit."""
        try:
            outcomes = await self._store.collect(pending.in_flight)
        except StateStoreError as exc:
            log.warning("%s; re-applying the batch", exc)
            outcomes = await self._store.apply_batch_retrying(
                pending.prepared.requests, stop=self._stopping
            )
        roundtrip = time.perf_counter() - pending.in_flight.sent_at
        result = self._processor.finish(pending.prepared, outcomes)
        self.stats.add(result)
        deliveries = await publish(producer, self.settings.topic("scores"), result.snapshots)
        deliveries += await publish(
            producer, self.settings.topic("deadletter"), result.dead_letters
        )
        # Acknowledgements and the commit run behind the next batch, in order; at most two
        # batches wait for them, so a slow broker slows the loop instead of piling up.
        previous = self._committing[-1] if self._committing else None
        self._committing.append(
            asyncio.ensure_future(
                self._commit_when_delivered(
                    consumer, deliveries, pending, previous, result, roundtrip
                )
            )
        )
        while len(self._committing) > 2:
            await self._committing.popleft()

    async def _commit_when_delivered(
        self,
        consumer: AIOKafkaConsumer,
        deliveries: list[asyncio.Future[Any]],
        pending: _Pending,
        previous: asyncio.Future[None] | None,
        result: BatchResult,
        roundtrip: float,
    ) -> None:
        await asyncio.gather(*deliveries)
        self.metrics.observe_batch(result, datetime.now(UTC), roundtrip)
        if previous is not None:
            await previous
        try:
            await consumer.commit(pending.commits)
        except (CommitFailedError, KafkaError) as exc:
            # The group rebalanced under us: whoever owns these partitions now re-reads them and
            # the store skips what was applied, so nothing is lost or counted twice.
            log.warning("offset commit failed (%s); the new owner will redeliver", exc)


@dataclass(frozen=True, slots=True)
class _Pending:
    prepared: PreparedBatch
    in_flight: InFlight
    commits: dict[TopicPartition, int]
