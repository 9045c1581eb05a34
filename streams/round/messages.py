"""The messages of a round: a consumed record, an applied event, an output to publish.

Plain types, no I/O: the ingest loop makes them, the round (:mod:`streams.round.scorer`) and the
state writers (:mod:`streams.state`) read them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from crm_core.errors import EventRejected
from schemas import DeadLetter, Event, dead_letter_key
from scorers.profile import Profile

__all__ = ["Applied", "OutputMessage", "Record", "dead_letter"]


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


class Applied(NamedTuple):
    """An event the store applied, with the customer's profile right after it."""

    record: Record
    event: Event
    profile: Profile
    event_time: float
    late: bool


def dead_letter(record: Record, rejected: EventRejected, detected_at: datetime) -> OutputMessage:
    """The dead letter of a consumed ``record`` that was ``rejected``, to the record's
    partition number and keyed by :func:`schemas.dead_letter_key` of its key."""
    letter = DeadLetter.from_rejection(
        rejected,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        detected_at=detected_at.astimezone(UTC),
        broker_timestamp_ms=record.timestamp,
    )
    return OutputMessage(record.partition, dead_letter_key(record.key), letter.to_json_bytes())
