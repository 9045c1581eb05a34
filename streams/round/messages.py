"""The messages of a round: a consumed record, an applied event, an output to publish.

Plain types, no I/O: the ingest loop makes them, the round (:mod:`streams.round.scorer`) and the
state writers (:mod:`streams.state`) read them.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from schemas import Event
from scorers.profile import Profile

__all__ = ["Applied", "OutputMessage", "Record"]


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
