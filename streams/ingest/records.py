"""Input records in: validated events to apply, dead letters for the rest, and the accounting
of what the store did with them.

This is the stream logic without Kafka: :mod:`streams.ingest.service` feeds it records; the valid
events wait in the reorder buffer, are applied by the store, and are scored by
:mod:`streams.round.scorer`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from crm_core.errors import EventRejected
from crm_core.settings import Settings
from schemas import DeadLetterReason, Event, EventParser
from scorers.dedup import release_order
from scorers.deltas import delta_for, epoch_seconds
from streams.round.messages import Applied, OutputMessage, Record, dead_letter
from streams.state.profiles import ApplyOutcome, ApplyRequest, ApplyResult

__all__ = [
    "Accepted",
    "BatchResult",
    "IngestStats",
    "ParsedBatch",
    "PipelineProcessor",
]


@dataclass(slots=True)
class BatchResult:
    """What one round produced and how its records were accounted for.

    Over a worker's life ``consumed == applied + duplicates + dead letters + still buffered``;
    a round counts what it consumed and what it settled, which need not be the same records.
    """

    consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    timer_checkpoints: int = 0
    snapshots: list[OutputMessage] = field(default_factory=list)
    dead_letters: list[OutputMessage] = field(default_factory=list)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    events_by_type: Counter[tuple[str, str]] = field(default_factory=Counter)
    alerts_by_type: Counter[str] = field(default_factory=Counter)
    event_times: list[datetime] = field(default_factory=list)
    fetched_at: datetime | None = None
    _letter_reasons: list[str] = field(default_factory=list)  # of each of dead_letters

    def dead_letter(self, letter: OutputMessage, reason: str) -> None:
        """Add a dead letter and count its reason."""
        self.dead_letters.append(letter)
        self._letter_reasons.append(reason)
        self.dead_letter_reasons[reason] += 1

    def only(self, partitions: Collection[int]) -> None:
        """Forget the dead letters of partitions the round may no longer write: its offsets
        there are not committed, so the next owner reads those records again and counts
        them (a round counts only what it keeps, as it saves only that)."""
        kept = [(m, r) for m, r in zip(self.dead_letters, self._letter_reasons, strict=True)
                if m.partition in partitions]  # fmt: skip
        self.dead_letters = [m for m, _ in kept]
        self._letter_reasons = [r for _, r in kept]
        self.dead_letter_reasons = Counter(self._letter_reasons)


class Accepted(NamedTuple):
    """A valid event waiting to be applied: its record, the event, and the store request."""

    record: Record
    event: Event
    request: ApplyRequest

    @property
    def event_time(self) -> float:
        """Event time in whole epoch seconds: the walk and the timers work on whole seconds,
        so an event and a due time compare the same way whichever round they fall in (the
        event clock orders by the exact time, :attr:`sort_key`)."""
        return float(self.request.event_time)

    @property
    def sort_key(self) -> tuple[float, str, str]:
        """Order within a second: exact time, then kind and event id (never arrival order)."""
        return release_order(self.event)


@dataclass(slots=True)
class ParsedBatch:
    """A fetched batch after validation: dead letters decided, valid events to apply."""

    result: BatchResult
    accepted: list[Accepted] = field(default_factory=list)


class PipelineProcessor:
    """Validates records from the input topics and accounts for what the store did with them."""

    def __init__(self, settings: Settings) -> None:
        self._window_days = settings.dedup_window_days
        self._fx_rates = dict(settings.fx_rates)
        self._kinds = {settings.topic(kind): kind for kind in ("purchase", "service", "marketing")}
        self._parser = EventParser(
            max_bytes=settings.max_event_bytes,
            max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
            accepted_currencies=frozenset(settings.fx_rates),
        )

    def parse(self, records: Sequence[Record], now: datetime) -> ParsedBatch:
        """Parse and validate; store requests for valid events, dead letters for the rest."""
        parsed = ParsedBatch(BatchResult(consumed=len(records), fetched_at=now))
        result = parsed.result
        for record in records:
            kind = self._kinds[record.topic]
            try:
                event = self._parser.parse(record.value, kind, now)
                _check_key(record.key, event.customer_id)
                delta = delta_for(event, self._fx_rates)
            except EventRejected as rejected:
                result.dead_letter(dead_letter(record, rejected, now), rejected.reason)
                continue
            request = ApplyRequest(
                customer_id=event.customer_id,
                kind=kind,
                offset=record.offset,
                event_id=event.event_id,
                event_time=epoch_seconds(event.event_time),
                delta=delta,
            )
            parsed.accepted.append(Accepted(record, event, request))
        return parsed

    def settle(
        self, items: Sequence[tuple[Accepted, bool]], outcomes: Sequence[ApplyResult]
    ) -> list[Applied]:
        """The events of ``(event, late)`` items the store applied (now, or before by a round
        never saved), with the profile after each."""
        return [
            Applied(item.record, item.event, outcome.profile, item.event_time, late)
            for (item, late), outcome in zip(items, outcomes, strict=True)
            if outcome.profile is not None
        ]

    def account(
        self,
        items: Sequence[tuple[Accepted, bool]],
        outcomes: Sequence[ApplyResult],
        result: BatchResult,
        partitions: Collection[int],
    ) -> None:
        """Count the outcomes of the items on ``partitions`` into ``result`` and dead-letter
        those too old to deduplicate. Items on other partitions are counted by whoever redoes
        them (the round may no longer write those: :mod:`streams.handover`)."""
        for (item, late), outcome in zip(items, outcomes, strict=True):
            record, event = item.record, item.event
            if record.partition not in partitions:
                continue
            if outcome.outcome is ApplyOutcome.BEYOND_WINDOW:
                window = self._window_days
                too_old = EventRejected(
                    DeadLetterReason.BEYOND_DEDUP_WINDOW.value,
                    f"event {event.event_id} is more than {window:g} days older than this "
                    f"customer's newest {event.kind} event, so it cannot be deduplicated; "
                    "not applied (raise CRM_DEDUP_WINDOW_DAYS, or replay into fresh state)",
                )
                now = datetime.now(UTC)
                result.dead_letter(dead_letter(record, too_old, now), too_old.reason)
            elif outcome.profile is not None:  # applied now, or before by a round never saved
                result.applied += 1
                result.late += late
                result.events_by_type[(event.kind, event.type)] += 1
                result.event_times.append(event.event_time)
            else:
                result.duplicates += 1


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


class IngestStats:
    """Running totals since start (also exported as Prometheus metrics)."""

    def __init__(self) -> None:
        self.consumed = 0
        self.applied = 0
        self.duplicates = 0
        self.late = 0
        self.timer_checkpoints = 0
        self.examples = 0
        self.alerts: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()  # valid events not applied, by reason

    def report(self) -> dict[str, Any]:
        """The totals, for ``/health``."""
        return {
            "consumed": self.consumed,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "late": self.late,
            "timer_checkpoints": self.timer_checkpoints,
            "alerts": dict(self.alerts),
            "dead_letters": dict(self.dead_letters),
            "skipped": dict(self.skipped),
            "training_examples": self.examples,
        }

    def add(self, result: BatchResult) -> None:
        self.consumed += result.consumed
        self.applied += result.applied
        self.duplicates += result.duplicates
        self.late += result.late
        self.timer_checkpoints += result.timer_checkpoints
        self.alerts.update(result.alerts_by_type)
        self.dead_letters.update(result.dead_letter_reasons)
