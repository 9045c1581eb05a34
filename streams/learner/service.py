"""The churn learner service: one leader in a deployment learns from ``crm.training`` and
publishes numbered churn-model versions to the registry.

Every worker runs a :class:`LearnerService`; only the holder of the Redis lock
(:class:`streams.learner.state.LeaderLock`) learns, the others wait and take over when its lease
expires. The leader assigns itself every partition of the training topic (no consumer group, no
Kafka commits) and seeks each to the offset in the checkpoint: the checkpoint, one blob with the
learner and the next offset per partition, is the only truth about what was learned. So after a
crash the next leader resumes exactly where the checkpointed model left off: no example lost,
none learned twice (the learner also skips re-sent examples by idempotency key).

Each example is learned prequentially (predict, score the prediction, then learn); drift the
learner detects becomes a ``model_drift`` alert. Every ``learner_publish_every`` learned
examples or ``learner_publish_seconds`` (whichever comes first) the leader writes the
checkpoint, then publishes the compiled model as a new version of ``churn``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service
from redis.exceptions import RedisError

from crm_core.errors import EventRejected, ModelError, StateStoreError
from crm_core.settings import Settings
from scorers.learner import OnlineLearner
from scorers.prequential import log_loss_one
from streams.ingest.kafka_io import publish_dead_letters
from streams.ingest.metrics import LearnerMetrics
from streams.ingest.quarantine import Quarantine
from streams.ingest.topics import ensure_topics
from streams.learner.messages import DeliveryQueue, drift_alert, parse_example
from streams.learner.publish import publish_learned
from streams.learner.state import Checkpoint, CheckpointStore, LeaderLock
from streams.models.registry import CHURN_MODEL, ModelRegistry
from streams.round.messages import dead_letter
from streams.state.keys import Layout
from streams.state.profiles import connect_redis
from streams.state.retry import answers_ping, retrying

__all__ = ["LearnerService"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_REDIS_ERRORS = (RedisError, OSError, StateStoreError)


class LearnerService(Service):
    """Learns the churn model from the training topic while it holds the learner lock."""

    def __init__(
        self,
        settings: Settings,
        metrics: LearnerMetrics | None = None,
        *,
        lock_ttl: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics if metrics is not None else LearnerMetrics()
        self.topic = settings.topic("training")
        self._redis = connect_redis(settings)
        self._registry = ModelRegistry(self._redis, settings.redis_key_prefix)
        self._lock = LeaderLock(
            self._redis, Layout(settings.redis_key_prefix).lock("learner"), lock_ttl
        )
        self._store = CheckpointStore(
            self._redis,
            self._registry.key(CHURN_MODEL, "epoch"),
            self._registry.key(CHURN_MODEL, "checkpoint"),
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        self._loop_exited = asyncio.Event()
        self._epoch = 0
        self._learner: OnlineLearner | None = None
        self._offsets: dict[int, int] = {}  # next offset to learn, per partition
        self._checkpointed: dict[int, int] = {}
        self._learned_since = 0  # examples learned since the last published version
        self._loss_since, self._loss_n = 0.0, 0  # log loss of what this process learned since
        self._last_checkpoint = time.monotonic()
        self._gauges_at = 0.0
        self._outputs: DeliveryQueue | None = None
        self._dead_letter_producer: AIOKafkaProducer | None = None
        self._dead_letters: list[asyncio.Future[Any]] = []
        self._quarantine = Quarantine(
            self._redis,
            settings.redis_key_prefix,
            settings.deadletter_quarantine_maxlen,
            self.metrics.quarantined,
        )
        self._version: int | None = None
        self._reference: dict[str, Any] | None = None  # metrics when that version was published
        self.error: str | None = None  # why this process cannot lead, if it cannot

    @property
    def leader(self) -> bool:
        """Whether this process holds the lock and learns."""
        return self._lock.held

    async def on_start(self) -> None:
        s = self.settings
        await ensure_topics(s)
        common = {"bootstrap_servers": s.kafka_bootstrap, **s.kafka_client_options()}
        self._producer = AIOKafkaProducer(**common, acks="all", enable_idempotence=True)
        # Dead letters apart, not idempotent: one refused batch must not block the others
        # (streams/ingest/quarantine.py).
        self._dead_letter_producer = AIOKafkaProducer(**common, acks="all")
        self._consumer = AIOKafkaConsumer(
            **common,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a checkpoint offset the log no longer has
            max_poll_records=s.batch_max_records,
            fetch_max_bytes=16 << 20,
        )
        await self._producer.start()
        await self._dead_letter_producer.start()
        await self._consumer.start()
        self._outputs = DeliveryQueue(self._producer)

    async def on_stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(TimeoutError):  # the loop checkpoints what it learned
            await asyncio.wait_for(self._loop_exited.wait(), 30)
        await self._lock.release()
        if self._consumer is not None:
            await self._consumer.stop()
        for producer in (self._producer, self._dead_letter_producer):
            if producer is not None:
                await producer.stop()
        await self._redis.aclose()

    def _done(self) -> bool:
        return self.should_stop or self._stopping.is_set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # --- leadership -------------------------------------------------------------------------
    @Service.task
    async def _run(self) -> None:
        try:
            while not self._done():
                if not self._lock.held and not await self._try_lead():
                    await self._pause(min(1.0, self._lock.ttl / 3))
                    continue
                await self._learn_batch()
                if not self._lock.held:
                    await self._step_down()
            if self._lock.held:
                await self._step_down()
        except _REDIS_ERRORS:
            if not self._stopping.is_set():
                raise  # _retrying gives up only when stopping
        finally:
            self._loop_exited.set()

    @Service.task
    async def _keep_lease(self) -> None:
        while not self._done():
            await self._pause(self._lock.ttl / 3)
            if not self._done():
                await self._lock.renew()

    async def _try_lead(self) -> bool:
        """Take the lock if it is free, then restore the checkpoint and seek to its offsets."""
        try:
            if not await self._lock.acquire():
                return False
        except _REDIS_ERRORS as exc:
            log.warning("learner lock: %s", exc)
            return False
        # New epoch first, then read: a checkpoint the old leader writes after the increment
        # is refused, one it wrote before is what we read.
        self._epoch = await self._retrying(self._store.new_epoch)
        s = self.settings
        try:
            checkpoint = await self._retrying(self._store.load)
            if checkpoint is None:
                self._learner = OnlineLearner(s.churn_model_kind, window=s.learner_metrics_window)
                self._offsets = {}
            else:
                self._learner = OnlineLearner.restore(checkpoint.learner)
                self._offsets = dict(checkpoint.offsets)
        except ModelError as exc:  # not transient: wait for an operator, let others try
            self.error = str(exc)
            log.error("learner cannot resume: %s", exc)
            await self._lock.release()
            await self._pause(30)
            return False
        self.error = None
        if self._learner.model.kind != s.churn_model_kind:
            log.warning(
                "the checkpoint holds a %s model, CRM_CHURN_MODEL_KIND says %s: the checkpoint "
                "wins (use a new CRM_REDIS_KEY_PREFIX, or delete %s, to switch)",
                self._learner.model.kind,
                s.churn_model_kind,
                self._store.key,
            )
        self._checkpointed = dict(self._offsets)
        current = await self._retrying(lambda: self._registry.current(CHURN_MODEL))
        self._version = None if current is None else current.version
        self._reference = None if current is None else current.metadata.get("metrics")
        published_n = None if current is None else current.metadata.get("n_examples")
        # Crashed between checkpoint and publish: the checkpoint is ahead, publish it soon.
        self._learned_since = int(self._learner.n_examples != (published_n or 0))
        self._loss_since, self._loss_n = 0.0, 0
        self._last_checkpoint = time.monotonic()
        consumer = self._require(self._consumer)
        partitions = [TopicPartition(self.topic, p) for p in range(s.partitions)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, self._offsets.get(tp.partition, 0))
        log.info(
            "learner leads (epoch %d) from %d examples, offsets %s",
            self._epoch,
            self._learner.n_examples,
            self._offsets,
        )
        return True

    async def _step_down(self) -> None:
        """Stop learning; checkpoint first if the epoch is still ours (one try, fenced)."""
        if self._learner is not None and self._dirty():
            try:
                await self._checkpoint(publish=self._learned_since > 0, retry=False)
            except (*_REDIS_ERRORS, KafkaError) as exc:
                log.warning("learner could not checkpoint while stepping down: %s", exc)
        self._learner = None
        if self._consumer is not None:
            self._consumer.unsubscribe()
        await self._lock.release()  # a waiting process takes over now, not at expiry

    # --- learning ---------------------------------------------------------------------------
    async def _learn_batch(self) -> None:
        consumer = self._require(self._consumer)
        learner = self._require(self._learner)
        fetched = await consumer.getmany(
            timeout_ms=self.settings.batch_timeout_ms, max_records=self.settings.batch_max_records
        )
        counts = {"learned": 0, "duplicates": 0, "drifts": 0, "dead_letters": 0}
        every = self.settings.learner_publish_every
        for tp in sorted(fetched, key=lambda tp: tp.partition):
            for message in fetched[tp]:
                await self._learn_one(learner, message, counts)
                self._offsets[tp.partition] = message.offset + 1
                if self._learned_since >= every:
                    await self._checkpoint(publish=True)
                    if not self._lock.held:
                        self._observe(learner, counts)
                        return
        due = time.monotonic() - self._last_checkpoint >= self.settings.learner_publish_seconds
        if due and self._dirty():
            await self._checkpoint(publish=self._learned_since > 0)
        self._observe(learner, counts)

    async def _learn_one(
        self, learner: OnlineLearner, message: ConsumerRecord[Any, Any], counts: dict[str, int]
    ) -> None:
        try:
            example = parse_example(message.value)
        except EventRejected as rejection:
            await self._dead_letter(message, rejection)
            counts["dead_letters"] += 1
            return
        try:
            outcome = learner.learn_one(example.idempotency_key, example.features, example.label)
        except Exception as exc:  # a learner bug must not stop the stream: keep the example
            log.exception("learner failed on %s", example.idempotency_key)
            await self._dead_letter(
                message, EventRejected("schema_violation", f"the learner could not use it: {exc}")
            )
            counts["dead_letters"] += 1
            return
        if not outcome.learned:
            counts["duplicates"] += 1
            return
        counts["learned"] += 1
        self._learned_since += 1
        self._loss_since += log_loss_one(0.5 if outcome.p is None else outcome.p, example.label)
        self._loss_n += 1
        if outcome.drift:
            counts["drifts"] += 1
            alert = drift_alert(
                snapshot=learner.metrics.snapshot(),
                reference=self._reference,
                reference_version=self._version,
                recent=(self._loss_since / self._loss_n, self._loss_n),
                n_examples=learner.n_examples,
                drifts=learner.drifts,
                kind=learner.model.kind,
                event_time=example.resolved_at,
            )
            log.warning("churn model drift: %s", "; ".join(alert.reasons))
            outputs = self._require(self._outputs)
            await outputs.send(self.settings.topic("alerts"), None, b"model", alert.to_json_bytes())

    async def _dead_letter(self, message: ConsumerRecord[Any, Any], error: EventRejected) -> None:
        letter = dead_letter(message, error, datetime.now(UTC))
        producer = self._require(self._dead_letter_producer)
        topic = self.settings.topic("deadletter")
        # Never fails: what Kafka refuses goes to the quarantine; awaited before a checkpoint.
        self._dead_letters += await publish_dead_letters(
            producer, topic, [letter], self._quarantine
        )

    def _observe(self, learner: OnlineLearner, counts: dict[str, int]) -> None:
        """Counters every batch; the prequential gauges at most once a second (a snapshot
        costs ~15 ms at 200k examples, as much as learning 700)."""
        if not any(counts.values()):
            return
        self.metrics.count_batch(**counts)
        if time.monotonic() - self._gauges_at >= 1.0:
            self.metrics.set_prequential(learner.metrics.snapshot())
            self._gauges_at = time.monotonic()

    def _dirty(self) -> bool:
        return self._learned_since > 0 or self._offsets != self._checkpointed

    # --- checkpoint and publish -------------------------------------------------------------
    async def _checkpoint(self, *, publish: bool, retry: bool = True) -> None:
        """Write the checkpoint (fenced by the epoch), then publish the model if ``publish``.

        Outputs of the covered examples are acknowledged first, so none is lost to a crash
        after the checkpoint. Checkpoint before version is the safe order: a crash between the
        two leaves the checkpoint ahead of the registry, and the next leader publishes it at
        once. The other order could publish a model that no checkpoint holds; a leader resuming
        from the older checkpoint would then relearn examples the published version already had,
        and versions would go back in ``n_examples``.
        """
        learner = self._require(self._learner)
        await self._require(self._outputs).delivered()
        await asyncio.gather(*self._dead_letters)
        self._dead_letters = []
        offsets = dict(self._offsets)
        state = Checkpoint(learner.checkpoint(), offsets, self.topic, learner.n_examples)
        if not await self._retrying(partial(self._store.save, self._epoch, state), retry=retry):
            log.warning("a newer learner leader fenced this one off; stepping down")
            self._lock.held = False
            return
        self._checkpointed = offsets
        self._last_checkpoint = time.monotonic()
        if not publish:
            return
        snapshot = learner.metrics.snapshot()
        run = partial(self._retrying, retry=retry)
        version = await publish_learned(self._registry, learner, snapshot, offsets, run)
        self._version = version
        self._reference = snapshot
        self._learned_since, self._loss_since, self._loss_n = 0, 0.0, 0
        self.metrics.model_version.set(version)
        self.metrics.set_prequential(snapshot)
        self._gauges_at = time.monotonic()
        log.info("published churn model v%d (%d examples)", version, learner.n_examples)

    async def _retrying(self, call: Callable[[], Awaitable[T]], *, retry: bool = True) -> T:
        """Run a Redis step until it succeeds (Redis may restart under us) or we stop."""
        if not retry:
            return await call()
        return await retrying(
            call, errors=_REDIS_ERRORS, stopping=self._stopping, log=log, what="learner: "
        )

    @staticmethod
    def _require(value: T | None) -> T:
        if value is None:
            raise RuntimeError("LearnerService used before on_start / before leading")
        return value

    async def health(self) -> dict[str, Any]:
        """Leader or not, what was learned and published, offsets; ``ok`` when Redis answers."""
        redis_ok = await answers_ping(self._redis)  # a hung Redis must not hang /health
        learner = self._learner
        return {
            "ok": redis_ok,
            "leader": self._lock.held,
            "error": self.error,
            "n_examples": None if learner is None else learner.n_examples,
            "drifts": None if learner is None else learner.drifts,
            "model_version": self._version,
            "metrics": None if learner is None else learner.metrics.snapshot(),
            "offsets": {str(p): o for p, o in sorted(self._offsets.items())},
            "checkpointed_offsets": {str(p): o for p, o in sorted(self._checkpointed.items())},
        }
