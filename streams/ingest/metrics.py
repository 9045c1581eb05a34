"""Prometheus metrics of the pipeline, grouped in one object built from an injected registry.

Updated once per batch, never per event, so they stay out of the hot path. Names match the
Grafana dashboard in ``ops/grafana/dashboards/crm-scoring.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.ingest.records import BatchResult

__all__ = ["LATENCY_BUCKETS", "LearnerMetrics", "PipelineMetrics"]

#: Seconds; from 1 ms to 10 minutes (event-time lag in a replay can be much larger: +Inf).
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
)  # fmt: skip
_ROUNDTRIP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


_QUARANTINED = "Dead letters the dead-letter topic refused, kept in the Redis quarantine instead"


class _Declare:
    """Declares metrics on one registry, one call a metric (labels last)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, labels, registry=self._registry)

    def gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(name, doc, labels, registry=self._registry)

    def histogram(self, name: str, doc: str, *, buckets: Sequence[float]) -> Histogram:
        return Histogram(name, doc, buckets=buckets, registry=self._registry)


class _Versions(Protocol):
    @property
    def model_version(self) -> object: ...
    @property
    def churn_version(self) -> object: ...
    @property
    def boundaries_version(self) -> object: ...


class PipelineMetrics:
    """Every metric the ingest pipeline exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        m = _Declare(self.registry)
        self.events = m.counter("crm_events", "Events applied, by topic and type", "topic", "type")
        self.dead_letters = m.counter(
            "crm_deadletters", "Messages dead-lettered, by reason", "reason"
        )
        self.quarantined = m.counter("crm_deadletters_quarantined", _QUARANTINED)
        self.duplicates = m.counter(
            "crm_duplicates_skipped", "Redelivered or re-sent events skipped"
        )
        self.skipped = m.counter(
            "crm_events_skipped",
            "Valid events not applied, by reason (erased: the customer was erased)",
            "reason",
        )
        self.removed = m.counter(
            "crm_customers_removed",
            "Customers whose data was removed, by reason (retention: silent past "
            "CRM_RETENTION_DAYS in event time, or an event found its old data expired)",
            "reason",
        )
        self.consumed = m.counter("crm_consumed", "Messages consumed from input topics")
        self.event_to_score = m.histogram(
            "crm_event_to_score_seconds",
            "From an event's time to its score snapshot being published",
            buckets=LATENCY_BUCKETS,
        )
        self.ingest_to_alert = m.histogram(
            "crm_ingest_to_alert_seconds",
            "From fetching the records whose round raised an alert to publishing it",
            buckets=LATENCY_BUCKETS,
        )
        self.redis_roundtrip = m.histogram(
            "crm_redis_roundtrip_seconds",
            "Sending a batch to Redis until its results were read",
            buckets=_ROUNDTRIP_BUCKETS,
        )
        self.batch_size = m.histogram(
            "crm_batch_records",
            "Records per processed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
        )
        self.redis_errors = m.counter(
            "crm_redis_errors",
            "Redis steps of a round that failed and were retried, by kind "
            "(oom, readonly, timeout, connection, other)",
            "kind",
        )
        self.late_events = m.counter(
            "crm_late_events",
            "Events older than their partition's watermark on arrival (applied, no alerts)",
        )
        self.timer_checkpoints = m.counter(
            "crm_timer_checkpoints", "Customers re-scored because time passed"
        )
        self.alerts = m.counter("crm_alerts", "Alerts published, by type", "alert_type")
        self.due_backlog = m.gauge(
            "crm_due_backlog",
            "Customers whose due time the watermark had passed at the last sweep",
            "partition",
        )
        self.watermark_delay = m.gauge(
            "crm_watermark_delay_seconds",
            "Wall clock minus the partition's event-time watermark",
            "partition",
        )
        self.buffered = m.gauge(
            "crm_reorder_buffered", "Events waiting for the watermark, by partition", "partition"
        )
        self.consumer_lag = m.gauge(
            "crm_consumer_lag",
            "Messages not yet consumed, by input partition",
            "topic",
            "partition",
        )
        self.kafka_brokers = m.gauge(
            "crm_kafka_brokers", "Kafka brokers in the consumer's cluster metadata"
        )
        self.kafka_brokers_missing = m.gauge(
            "crm_kafka_brokers_missing",
            "Brokers listed before that the cluster metadata no longer lists (down or fenced)",
        )
        self.model_version = m.gauge(
            "crm_model_version",
            "Version of each model the worker scores with (probability, churn, rfm)",
            "model",
        )

    def observe_batch(
        self, result: BatchResult, published_at: datetime, roundtrip_seconds: float
    ) -> None:
        """Record one finished batch (its scores were published at ``published_at``)."""
        self.consumed.inc(result.consumed)
        self.duplicates.inc(result.duplicates)
        self.batch_size.observe(result.consumed)
        if result.applied:
            self.redis_roundtrip.observe(roundtrip_seconds)
        for (kind, event_type), count in result.events_by_type.items():
            self.events.labels(kind, event_type).inc(count)
        self.late_events.inc(result.late)
        self.timer_checkpoints.inc(result.timer_checkpoints)
        for alert_type, count in result.alerts_by_type.items():
            self.alerts.labels(alert_type).inc(count)
            if result.fetched_at is not None:
                waited = max(0.0, published_at.timestamp() - result.fetched_at.timestamp())
                for _ in range(count):
                    self.ingest_to_alert.observe(waited)
        for reason, count in result.dead_letter_reasons.items():
            self.dead_letters.labels(reason).inc(count)
        published = published_at.timestamp()
        for event_time in result.event_times:
            self.event_to_score.observe(max(0.0, published - event_time.timestamp()))

    def set_clock(
        self, watermarks: Mapping[int, float], buffered: Callable[[int], int], wall_now: float
    ) -> None:
        """Watermark delay and reorder-buffer size of each partition."""
        for partition, watermark in watermarks.items():
            self.watermark_delay.labels(str(partition)).set(wall_now - watermark)
            self.buffered.labels(str(partition)).set(buffered(partition))

    def set_due_backlog(self, popped: Mapping[int, int]) -> None:
        """How many customers each partition's last sweep found due."""
        for partition, count in popped.items():
            self.due_backlog.labels(str(partition)).set(count)

    def set_model_versions(self, follower: _Versions) -> None:
        """The versions the worker scores with (a model not published yet is left out)."""
        for model, version in (
            ("probability", follower.model_version),
            ("churn", follower.churn_version),
            ("rfm", follower.boundaries_version),
        ):
            if isinstance(version, int | float):
                self.model_version.labels(model).set(version)

    def set_brokers(self, listed: int, most: int) -> None:
        """Brokers the cluster metadata lists now, and how many fewer than the most so far."""
        self.kafka_brokers.set(listed)
        self.kafka_brokers_missing.set(most - listed)

    def set_lag(self, lags: Iterable[tuple[str, int, int]]) -> None:
        """Set consumer lag from (topic, partition, messages behind) triples."""
        for topic, partition, lag in lags:
            self.consumer_lag.labels(topic, str(partition)).set(lag)


class LearnerMetrics:
    """Every metric the churn learner exports (updated once per batch)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        m = _Declare(self.registry)
        self.auc = m.gauge(
            "crm_churn_prequential_auc",
            "Prequential (test-then-train) AUC of the churn model",
            "window",
        )
        self.log_loss = m.gauge(
            "crm_churn_prequential_log_loss", "Prequential log loss of the churn model", "window"
        )
        self.top_decile_recall = m.gauge(
            "crm_churn_top_decile_recall",
            "Share of churners among the top 10% predicted, prequential",
            "window",
        )
        self.examples_learned = m.counter(
            "crm_churn_examples_learned", "Training examples the churn model learned"
        )
        self.duplicates = m.counter(
            "crm_churn_duplicates_skipped",
            "Training examples skipped because their idempotency key was learned",
        )
        self.drifts = m.counter("crm_model_drift_detections", "Drift detections of the churn model")
        self.model_version = m.gauge(
            "crm_churn_model_version", "Churn model version last published"
        )
        self.dead_letters = m.counter("crm_training_deadletters", "Training messages dead-lettered")
        self.quarantined = m.counter("crm_training_deadletters_quarantined", _QUARANTINED)

    def count_batch(self, *, learned: int, duplicates: int, drifts: int, dead_letters: int) -> None:
        """What one batch did."""
        self.examples_learned.inc(learned)
        self.duplicates.inc(duplicates)
        self.drifts.inc(drifts)
        self.dead_letters.inc(dead_letters)

    def set_prequential(self, snapshot: Mapping[str, float | int | None]) -> None:
        """The prequential metrics of a snapshot (a value that is None is not known yet)."""
        for gauge, name in (
            (self.auc, "auc"),
            (self.log_loss, "log_loss"),
            (self.top_decile_recall, "top_decile_recall"),
        ):
            for window, key in (("cumulative", name), ("sliding", f"window_{name}")):
                value = snapshot.get(key)
                if value is not None:
                    gauge.labels(window).set(value)
