"""One batch of input records in, profile updates, score snapshots and dead letters out.

This is the stream logic without Kafka: :mod:`streams.ingest` feeds it records and publishes
what it returns, so it can be tested with plain records and a real Redis.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from crm_score.errors import EventRejected
from crm_score.settings import Settings
from schemas import DeadLetter, DeadLetterReason, Event, EventParser
from schemas.fast import encode_score_snapshot
from scorers._special import FloatArray
from scorers.deltas import delta_for, epoch_seconds
from scorers.probability import ProbabilityModel
from scorers.probability_batch import BatchScores, score_batch
from scorers.profile import Profile
from scorers.quintiles import RfmBoundaries
from scorers.rfm import rfm
from scorers.segments import load_segments
from streams.store import ApplyOutcome, ApplyRequest, ApplyResult, RedisProfileStore

__all__ = [
    "BatchResult",
    "OutputMessage",
    "PipelineProcessor",
    "PreparedBatch",
    "Record",
]


class Record(Protocol):
    """What the pipeline reads of a consumed message (aiokafka's ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int | None: ...


class OutputMessage(NamedTuple):
    """A message to publish, to the same partition number as the record it came from."""

    partition: int
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class BatchResult:
    """What one batch produced and how its records were accounted for.

    ``consumed == applied + duplicates + len(dead_letters)`` always holds.
    """

    consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    snapshots: list[OutputMessage] = field(default_factory=list)
    dead_letters: list[OutputMessage] = field(default_factory=list)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    events_by_type: Counter[tuple[str, str]] = field(default_factory=Counter)
    event_times: list[datetime] = field(default_factory=list)


@dataclass(slots=True)
class PreparedBatch:
    """A validated batch waiting for the store: what to apply, and what was already decided."""

    now: datetime
    result: BatchResult
    accepted: list[tuple[Record, Event]] = field(default_factory=list)
    requests: list[ApplyRequest] = field(default_factory=list)


class PipelineProcessor:
    """Validates, applies and scores batches of records from the input topics."""

    def __init__(self, settings: Settings, store: RedisProfileStore) -> None:
        self._store = store
        #: The BG/NBD + Gamma-Gamma model scores use; None until one is published (hot-swapped
        #: by the worker between batches).
        self.model: ProbabilityModel | None = None
        #: RFM quintile boundaries scores use; None until published (hot-swapped likewise).
        self.boundaries: RfmBoundaries | None = None
        self._segments = load_segments()
        self._window_days = settings.dedup_window_days
        self._fx_rates = dict(settings.fx_rates)
        self._kinds = {settings.topic(kind): kind for kind in ("purchase", "service", "marketing")}
        self._parser = EventParser(
            max_bytes=settings.max_event_bytes,
            max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
            accepted_currencies=frozenset(settings.fx_rates),
        )

    def prepare(self, records: Sequence[Record], now: datetime) -> PreparedBatch:
        """Parse and validate; the store requests for valid events, dead letters for the rest.

        Then the caller applies ``requests`` with the store and hands the outcomes to
        :meth:`finish`; only after that may the records' offsets be committed.
        """
        prepared = PreparedBatch(now=now, result=BatchResult(consumed=len(records)))
        result = prepared.result
        for record in records:
            kind = self._kinds[record.topic]
            try:
                event = self._parser.parse(record.value, kind, now)
                _check_key(record.key, event.customer_id)
                delta = delta_for(event, self._fx_rates)
            except EventRejected as rejected:
                result.dead_letters.append(_dead_letter(record, rejected, now))
                result.dead_letter_reasons[rejected.reason] += 1
                continue
            prepared.accepted.append((record, event))
            prepared.requests.append(
                ApplyRequest(
                    customer_id=event.customer_id,
                    kind=kind,
                    offset=record.offset,
                    event_id=event.event_id,
                    event_time=epoch_seconds(event.event_time),
                    delta=delta,
                )
            )
        return prepared

    def finish(self, prepared: PreparedBatch, outcomes: Sequence[ApplyResult]) -> BatchResult:
        """Score what was applied and account for the rest, given the store's outcomes."""
        result = prepared.result
        applied: list[tuple[Record, Event, Profile]] = []
        for (record, event), outcome in zip(prepared.accepted, outcomes, strict=True):
            if outcome.outcome is ApplyOutcome.BEYOND_WINDOW:
                window = self._window_days
                too_old = EventRejected(
                    DeadLetterReason.BEYOND_DEDUP_WINDOW.value,
                    f"event {event.event_id} is more than {window:g} days older than this "
                    f"customer's newest {event.kind} event, so it cannot be deduplicated; "
                    "not applied (raise CRM_DEDUP_WINDOW_DAYS, or replay into fresh state)",
                )
                result.dead_letters.append(_dead_letter(record, too_old, prepared.now))
                result.dead_letter_reasons[too_old.reason] += 1
            elif outcome.outcome is ApplyOutcome.APPLIED and outcome.profile is not None:
                applied.append((record, event, outcome.profile))
            else:
                result.duplicates += 1
        model = self.model
        probabilities = None
        if model is not None and applied:
            probabilities = score_batch(
                model, [p for _, _, p in applied], [e.event_time.timestamp() for _, e, _ in applied]
            )
        for i, (record, event, profile) in enumerate(applied):
            result.applied += 1
            result.events_by_type[(event.kind, event.type)] += 1
            result.event_times.append(event.event_time)
            scores = rfm(profile, event.event_time)
            extra: dict[str, Any] = {}
            if probabilities is not None and model is not None:
                extra = _probability_fields(probabilities, i, model.version)
            if self.boundaries is not None:
                quintiles = self.boundaries.score_rfm(scores)
                if quintiles is not None:
                    r, f, m = quintiles
                    extra.update(r_score=r, f_score=f, m_score=m)
                    extra["segment"] = self._segments.segment_for(r, f, m)
            snapshot = encode_score_snapshot(
                customer_id=event.customer_id,
                as_of=event.event_time,
                trigger="event",
                event_id=event.event_id,
                recency_days=scores.recency_days,
                frequency=scores.frequency,
                monetary_minor=scores.monetary_minor,
                **extra,
            )
            result.snapshots.append(OutputMessage(record.partition, record.key, snapshot))
        return result


def _probability_fields(scores: BatchScores, i: int, version: str) -> dict[str, Any]:
    """One customer's probability scores as snapshot fields (NaN: not available -> None)."""

    def value(array: FloatArray) -> float | None:
        v = float(array[i])
        return None if math.isnan(v) else v

    next_at = value(scores.next_purchase_at)
    return {
        "p_alive": value(scores.p_alive),
        "expected_purchases_30d": value(scores.expected_purchases_30d),
        "expected_purchases_90d": value(scores.expected_purchases_90d),
        "clv": value(scores.clv),
        "next_purchase_at": None if next_at is None else datetime.fromtimestamp(next_at, UTC),
        "probability_model_version": version if value(scores.p_alive) is not None else None,
    }


def _check_key(key: bytes | None, customer_id: str) -> None:
    # Per-customer offsets only order events if all of a customer's events share a partition,
    # which Kafka guarantees only when the key is the customer id.
    if key != customer_id.encode():
        shown = "no key" if key is None else f"key {key[:40]!r}"
        raise EventRejected(
            DeadLetterReason.KEY_MISMATCH.value,
            f"message has {shown} but customer_id {customer_id!r}; "
            "producers must key messages by customer_id",
        )


def _dead_letter(record: Record, rejected: EventRejected, now: datetime) -> OutputMessage:
    letter = DeadLetter.from_rejection(
        rejected,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        detected_at=now.astimezone(UTC),
        broker_timestamp_ms=record.timestamp,
    )
    return OutputMessage(record.partition, record.key, letter.to_json_bytes())
