"""The ingest service: consume input topics in batches, release them in event-time order,
apply, score, publish, then commit.

Why not a Faust agent per event: on this 2-core machine Faust's per-event stream machinery alone
caps an agent at ~11k events/s (measured in bench/pipeline.py), which is below what the Redis
path sustains. This service keeps Faust as the application (lifecycle, web pages, timers) and
reads the input topics with one aiokafka consumer per worker in its own consumer group, a whole
fetch at a time.

Each fetch goes through the event clock (:mod:`streams.ingest.clock`): valid events wait until their
partition's watermark passes them and are then released in event-time order; each time the
watermark moves, a *round* applies the released events, pops the customers whose due time it
passed, walks every one of them through its timeline (:mod:`streams.round.scorer`) and publishes
snapshots and alerts. Offsets are committed only up to the oldest event still buffered, after
Redis applied the round and Kafka acknowledged its outputs (at-least-once out, effectively-once
state); a restart re-reads the buffered events and rebuilds the same buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from mode import Service
from redis.exceptions import RedisError

from crm_core.errors import StateStoreError
from crm_core.settings import Settings
from streams.ingest.checkpoint import KafkaOutputs
from streams.ingest.clock import EventClock
from streams.ingest.handover import publish_left_over
from streams.ingest.kafka_io import (
    BrokerWatch,
    OrderedCommits,
    RebalanceHooks,
    align,
    append_time_bound,
    assignment_status,
    consumer_lags,
    track_positions,
)
from streams.ingest.lag import ingest_group
from streams.ingest.metrics import PipelineMetrics
from streams.ingest.quarantine import Quarantine
from streams.ingest.records import Accepted, IngestStats
from streams.ingest.round_runner import RoundRunner, SubmittedRound
from streams.ingest.topics import ensure_topics, repair_topic_configs
from streams.models.refresh import ModelFollower, refresh_periodically
from streams.models.registry import ModelRegistry
from streams.state.erasure import ErasedCustomers
from streams.state.profiles import RedisProfileStore, connect_redis
from streams.state.retry import PING_SECONDS, answers_ping
from streams.state.round_store import RoundStore

__all__ = ["IngestService"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class IngestService(Service):
    """Consumes purchase, service and marketing topics; releases events in event-time order."""

    def __init__(
        self, settings: Settings, metrics: PipelineMetrics | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.stats = IngestStats()
        self.publishing = True  # False: a rebuild, which publishes nothing (crm_score.rebuild)
        self.metrics = metrics if metrics is not None else PipelineMetrics()
        self._redis = connect_redis(settings)
        self._store = RedisProfileStore(self._redis, settings)
        self._rounds = RoundStore(self._redis, self._store, settings)
        self._erased = ErasedCustomers(self._redis, settings)  # their events are skipped
        until = settings.replay_until
        self._clock: EventClock[Accepted] = EventClock(
            settings.input_topics,
            settings.allowed_lateness_seconds,
            live=settings.clock_mode == "live",
            idle_after=settings.idle_advance_seconds,
            replay_until=None if until is None else until.timestamp(),
        )
        self._stopping = asyncio.Event()
        self._runner = RoundRunner(
            settings, self._rounds, self._clock, self._erased, self.stats, self.metrics,
            self._stopping,
        )  # fmt: skip
        self._processor = self._runner.processor
        self._ownership = self._runner.ownership  # streams.ingest.handover
        self._steps = self._runner.steps
        self._unpositioned: set[TopicPartition] = set()
        scorer = self._runner.scorer
        self._follower = ModelFollower(
            ModelRegistry(self._redis, settings.redis_key_prefix), scorer.timeline, scorer.churn
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._dead_letter_producer: AIOKafkaProducer | None = None  # not idempotent: quarantine
        self._outputs: KafkaOutputs | None = None  # both producers, once started
        self._quarantine = Quarantine(
            self._redis,
            settings.redis_key_prefix,
            settings.deadletter_quarantine_maxlen,
            self.metrics.quarantined,
        )
        self._loop_exited = asyncio.Event()
        self._commits: OrderedCommits | None = None
        self._assigned = asyncio.Event()  # partitions were assigned: check the topic configs
        self._brokers = BrokerWatch()

    async def on_start(self) -> None:
        s = self.settings
        created = await ensure_topics(s)
        if created:
            log.info("created topics %s", ", ".join(created))
        common = {"bootstrap_servers": s.kafka_bootstrap, **s.kafka_client_options()}
        self._producer = AIOKafkaProducer(
            **common, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=1 << 20
        )
        self._dead_letter_producer = AIOKafkaProducer(
            **common, acks="all", linger_ms=5, max_batch_size=1 << 20
        )
        self._consumer = AIOKafkaConsumer(
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
            # An input topic deleted, recreated or repartitioned is seen within seconds.
            metadata_max_age_ms=int(s.kafka_metadata_max_age_seconds * 1000),
            # Partition p of every input topic carries the same customers: the range assignor
            # gives all three to one worker, so one clock orders a customer's events.
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        self._consumer.subscribe(
            list(s.input_topics), listener=RebalanceHooks(self.on_assigned, self.on_revoked)
        )
        self._commits = OrderedCommits(self._consumer, self.metrics)
        await self._producer.start()
        await self._dead_letter_producer.start()
        self._outputs = KafkaOutputs(
            s, self._producer, self._dead_letter_producer, self._quarantine
        )
        await self._consumer.start()
        await self._follower.follow()
        await self._erased.refresh()

    async def on_stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(TimeoutError):  # let the round in progress finish and commit
            await asyncio.wait_for(self._loop_exited.wait(), 15)
        if self._commits is not None:
            await self._commits.drain()
        with contextlib.suppress(StateStoreError):
            await self._rounds.confirm()  # else the next start publishes them again
        if self._consumer is not None:
            await self._consumer.stop()
        for producer in (self._producer, self._dead_letter_producer):
            if producer is not None:
                await producer.stop()
        await self._store.close()
        await self._rounds.close()
        await self._redis.aclose()

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Rebalance: start clocks for new partitions, floored at their saved watermarks."""
        self._assigned.set()  # a recreated topic has the broker's defaults: _repair_topics
        partitions = {tp.partition for tp in assigned} - self._clock.partitions
        floors = await self._retrying(lambda: self._rounds.watermarks(partitions))
        self._clock.assign(partitions, floors)
        await self._recover(partitions)
        self._runner.assigned(partitions)
        self._unpositioned |= {tp for tp in assigned if tp.partition in partitions}
        log.info("assigned partitions %s (watermark floors %s)", sorted(partitions), floors)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Rebalance: commit what is done, drop buffers (the new owner re-reads them)."""
        async with self._ownership.lock:
            await self._revoke(revoked)

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        if self._commits is not None:
            await self._commits.drain()  # every finished round's outputs acknowledged
        with contextlib.suppress(StateStoreError):
            await self._rounds.confirm()  # else the new owner publishes them again
        partitions = {tp.partition for tp in revoked}
        self._ownership.revoked(partitions)
        dropped = self._clock.revoke(partitions)
        self._runner.revoked(partitions)
        if self._commits is not None:
            self._commits.forget(revoked)
        self._unpositioned -= revoked
        log.info(
            "revoked partitions %s (%d buffered events left)", sorted(partitions), len(dropped)
        )

    async def _recover(self, partitions: set[int]) -> None:
        """Timers and alerts a dead worker left on ``partitions`` (streams.state.recovery): parked
        timers go back to the due-index, unconfirmed alerts are published again."""
        if not partitions:
            return
        self._rounds.recovery.publishing = self.publishing
        again = await self._retrying(lambda: self._rounds.recover(partitions))
        if self.publishing and self._producer is not None:
            await publish_left_over(
                self._rounds, self._producer, self.settings, partitions, again, self._retrying
            )

    @Service.task
    async def _consume(self) -> None:
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("IngestService._consume ran before on_start")
        try:
            await self._consume_until_stopped(consumer)
        finally:
            self._loop_exited.set()

    async def _consume_until_stopped(self, consumer: AIOKafkaConsumer) -> None:
        previous: SubmittedRound | None = None
        lead = self.settings.watermark_max_lead_seconds
        with contextlib.suppress(OSError, TimeoutError, StateStoreError, RedisError):
            await self._store.connect()  # else the first round finds no connection and redoes
        while not (self.should_stop or self._stopping.is_set()):
            fetched = await consumer.getmany(
                timeout_ms=self.settings.batch_timeout_ms,
                max_records=self.settings.batch_max_records,
            )
            await track_positions(consumer, self._clock, fetched, self._unpositioned)
            wall, now = time.time(), datetime.now(UTC)
            # Partitions revoked at an await above are someone else's: their next owner reads
            # these records again.
            owned = self._clock.partitions
            records = [m for tp, ms in fetched.items() if tp.partition in owned for m in ms]
            parsed = self._processor.parse(records, now)
            bounds = {  # how far each record may move its partition's watermark
                (m.topic, m.partition, m.offset): append_time_bound(
                    m.timestamp, m.timestamp_type, lead
                )
                for m in records
            }
            late = []
            for item in parsed.accepted:
                r = item.record
                bound = bounds[r.topic, r.partition, r.offset]
                if self._clock.observe(
                    r.topic, r.partition, r.offset, item.sort_key[0], item.sort_key, item, wall,
                    bound,
                ):  # fmt: skip
                    late.append(item)
            align(consumer, self._clock, self.settings.reorder_buffer_max)
            generation = (
                self._ownership.generation
            )  # of the release below (the hooks run at awaits)
            moved = set(self._clock.advance(wall))
            released = [x for p in sorted(moved) for x in self._clock.release(p)]
            to_pop = self._runner.to_sweep(moved)
            idle = not (parsed.result.consumed or late or released or to_pop)
            if idle and previous is None:
                continue
            try:
                if idle and previous is not None:
                    await self._complete(previous)
                    previous = None
                    continue
                # Redis reads and applies this round while the previous one is scored and
                # published; a round whose replies were lost is redone first, so a customer's
                # events are always applied in order.
                if previous is not None and self._runner.was_lost(previous):
                    await self._complete(previous)
                    previous = None
                current = await self._runner.submit(parsed, late, released, to_pop, generation)
                if previous is not None:
                    await self._complete(previous)
                previous = current
            except StateStoreError:
                if self._stopping.is_set():
                    return  # shutting down closed Redis under the round; nothing was committed
                raise
        if previous is not None:
            with contextlib.suppress(StateStoreError):
                await self._complete(previous)

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """:meth:`RoundRunner.retrying`: /health says why a step waits (:meth:`health`)."""
        return await self._runner.retrying(call)

    async def _complete(self, round_: SubmittedRound) -> None:
        assert self._commits is not None  # on_start ran: the loop needs the consumer
        outputs = self._outputs if self.publishing else None  # a rebuild publishes nothing
        await self._runner.complete(round_, outputs, self._commits)

    async def health(self) -> dict[str, Any]:
        """Redis reachable, partitions assigned, watermarks, totals so far; ``ok`` when Redis
        answers and takes the rounds' writes and every input topic is consumed (else
        ``reason`` says why)."""
        redis_ok = await answers_ping(self._redis)
        failing = self._steps.failing
        if failing is None and not redis_ok:
            failing = f"Redis does not answer PING within {PING_SECONDS:g} s"
        s = self.settings
        assigned, caught_up, topics = await assignment_status(
            self._consumer, s.input_topics, s.partitions
        )
        if failing is None and topics:
            failing = "; ".join(topics)
        brokers, most = self._brokers.observe(self._consumer)
        self.metrics.set_brokers(brokers, most)
        degraded = [f"Kafka: {most - brokers} of {most} brokers missing"] if brokers < most else []
        watermarks = {}
        for p in sorted(self._clock.partitions):
            w = self._clock.watermark(p)
            watermarks[str(p)] = None if w is None else datetime.fromtimestamp(w, UTC).isoformat()
        return {
            "ok": failing is None,
            **({"reason": failing} if failing is not None else {}),
            "redis": redis_ok,
            "assigned_partitions": assigned,
            "caught_up": caught_up,
            "input_problems": topics,
            "kafka_brokers": brokers,
            "degraded": degraded,
            "clock_mode": self.settings.clock_mode,
            "pii_encryption": self._rounds.pii.status,
            "watermarks": watermarks,
            "buffered": self._clock.buffered(),
            **self.stats.report(),
            **self._follower.versions(),
        }

    @Service.task
    async def _refresh_population(self) -> None:
        await refresh_periodically(
            self.settings, self._redis, self._clock.low_watermark, self._stopping
        )

    @Service.timer(1.0)
    async def _refresh_erased(self) -> None:
        """Pick up new erasures (``crm-score erase`` waits longer than this before it deletes
        again: see streams/state/erasure.py)."""
        with contextlib.suppress(RedisError, OSError):
            await self._erased.refresh()

    @Service.task
    async def _repair_topics(self) -> None:
        """After each assignment, the project's topic configs back where a topic lost them
        (streams.ingest.topics), off the rebalance's path: the admin calls may be slow."""
        while not self._stopping.is_set():
            await self._assigned.wait()
            self._assigned.clear()
            await repair_topic_configs(self.settings)

    @Service.timer(5.0)
    async def _poll_model(self) -> None:
        await self._follower.follow()
        self.metrics.set_model_versions(self._follower)

    @Service.timer(5.0)
    async def _export_lag(self) -> None:
        """Consumer lag per assigned partition, from the fetcher's high-water marks."""
        if self._consumer is not None:
            self.metrics.set_lag(await consumer_lags(self._consumer))
        self.metrics.set_brokers(*self._brokers.observe(self._consumer))
