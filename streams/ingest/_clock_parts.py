"""The parts of the event clock (:mod:`streams.ingest.clock`): one topic-partition's progress and
held offsets, one partition number's watermark and reorder buffer, and the checks of the
numbers the clock is given. Pure: no I/O, no clock reads."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, Generic, TypeAlias, TypeVar

__all__ = ["Entry", "PartitionState", "SourceProgress", "finite", "kafka_offset", "non_negative"]

T = TypeVar("T")

# (event_time, sort_key, seq, topic, offset, item): seq is unique, so a comparison never gets to
# the item.
Entry: TypeAlias = tuple[float, tuple[Any, ...], int, str, int, T]


def finite(value: float, name: str) -> float:
    if isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of (epoch) seconds, got {value!r}")
    return float(value)


def non_negative(value: float, name: str) -> float:
    value = finite(value, name)
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return value


def kafka_offset(value: int, name: str) -> int:
    if isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative Kafka offset, got {value!r}")
    return value


class SourceProgress:
    """One topic-partition: its progress, its largest event time, the offsets it has buffered."""

    __slots__ = ("_held", "_low", "highwater", "max_time", "position")

    def __init__(self) -> None:
        self.max_time: float | None = None
        self.position: int | None = None
        self.highwater: int | None = None
        self._held: Counter[int] = Counter()
        self._low: list[int] = []  # min-heap of held offsets; released ones leave it lazily

    @property
    def caught_up(self) -> bool:
        return (
            self.position is not None
            and self.highwater is not None
            and self.position >= self.highwater
        )

    def hold(self, offset: int) -> None:
        if not self._held[offset]:
            heapq.heappush(self._low, offset)
        self._held[offset] += 1

    def drop(self, offset: int) -> None:
        self._held[offset] -= 1
        if not self._held[offset]:
            del self._held[offset]

    def lowest_held(self) -> int | None:
        while self._low and self._low[0] not in self._held:
            heapq.heappop(self._low)
        return self._low[0] if self._low else None


class PartitionState(Generic[T]):
    """One partition number: its topics, watermark, last arrival and buffer."""

    __slots__ = ("buffer", "complete", "last_arrival", "sources", "watermark")

    def __init__(self, topics: Sequence[str], floor: float | None) -> None:
        self.sources = {topic: SourceProgress() for topic in topics}
        self.watermark = floor
        self.complete = False  # every event exactly at the watermark has been seen too
        self.last_arrival: float | None = None
        self.buffer: list[Entry[T]] = []

    def final(self, event_time: float) -> bool:
        """Whether no more events at ``event_time`` can come (they would be late)."""
        if self.watermark is None:
            return False
        return event_time < self.watermark or (self.complete and event_time == self.watermark)
