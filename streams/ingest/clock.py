"""The event-time clock and reorder buffer of one consumer: events leave in event-time order.

The input topics have the same partition count and are keyed by customer id, so partition ``p``
of every topic carries the same customers. :class:`EventClock` keeps one watermark and one buffer
per partition *number*, shared by its topics. A valid event is not applied when it is consumed:
it waits in the buffer until the watermark passes it, and :meth:`EventClock.release` hands out
a partition's events in ``(event_time, sort_key)`` order. Downstream therefore sees each
partition in event-time order, and replaying history gives exactly what running live gave. An
event older than the watermark when consumed is *late*: not buffered, the caller applies it at
once. One exactly at the watermark is not late, so more may still come at that time: events are
released once the watermark is *past* them, or once the partition is *complete* at it (replay
mode, at ``replay_until``; an event at the watermark is late from then on). Events with equal
times thus still leave in ``sort_key`` order, whatever order they arrived in.

The watermark of partition ``p`` (``L`` is the allowed lateness, times are epoch seconds):

- An event counts toward its topic's maximum event time with at most its ``bound`` (the broker's
  append time of its record plus a small lead, :meth:`EventClock.observe`), so one producer
  whose clock runs ahead cannot drag the watermark past everyone else's events; the event
  itself still waits until the watermark passes its own time.
- A topic is *caught up* on ``p`` when its position and high-water mark are both known and the
  position has reached the high-water mark. The other topics are *active*.
- Some topic active: the base is the smallest maximum event time over the active topics, or
  ``None`` while one of them has not shown an event yet (data is coming, its time is unknown).
- All caught up: the base is the largest maximum event time seen. Live mode: once nothing has
  arrived on ``p`` for ``idle_after`` of wall time, the base is at least ``wall_now`` (live event
  times track the wall clock, so an idle partition keeps pace). Replay mode never reads
  ``wall_now``; with ``replay_until`` set, the base is at least ``replay_until + L``, so the
  watermark reaches ``replay_until`` and the partition is complete there.
- ``watermark = max(previous watermark, floor, base - L)``: it never moves back, nor below the
  floor restored from the store. With no base and no floor it is ``None``: nothing is released
  and nothing is late.

Committing :meth:`EventClock.commit_offsets` never skips a buffered event: a restart re-reads
everything not released yet (and the state store drops the duplicates). Nothing here does I/O
or reads the clock; the caller passes ``wall_now`` (epoch seconds).

Examples
--------
>>> clock = EventClock(
...     ["crm.purchase", "crm.service"], allowed_lateness=60.0, live=False, idle_after=0.0
... )
>>> clock.assign([0])
>>> for topic in ("crm.purchase", "crm.service"):
...     clock.set_highwater(topic, 0, 10)
...     clock.set_position(topic, 0, 0)
>>> clock.observe("crm.purchase", 0, 0, 1000.0, ("e1",), "buy", wall_now=0.0)
False
>>> clock.advance(wall_now=0.0)  # crm.service has shown nothing yet: wait
{}
>>> clock.observe("crm.service", 0, 0, 1100.0, ("e2",), "ticket", wall_now=0.0)
False
>>> clock.observe("crm.purchase", 0, 1, 930.0, ("e3",), "refund", wall_now=0.0)
False
>>> clock.advance(wall_now=0.0)  # min(1000, 1100) - 60
{0: 940.0}
>>> clock.observe("crm.service", 0, 1, 940.0, ("e4",), "at the watermark", wall_now=0.0)
False
>>> clock.observe("crm.purchase", 0, 2, 939.0, ("e5",), "late", wall_now=0.0)
True
>>> clock.release(0)
['refund']
>>> clock.set_position("crm.purchase", 0, 3)
>>> clock.commit_offsets()[("crm.purchase", 0)]  # offset 0 is still buffered
0
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from streams.ingest._clock_parts import (
    PartitionState,
    SourceProgress,
    finite,
    kafka_offset,
    non_negative,
)

__all__ = ["EventClock"]

T = TypeVar("T")


class EventClock(Generic[T]):
    """Per-partition watermarks over several co-partitioned topics, and a reorder buffer.

    ``T`` is whatever the caller stores per buffered event (say its parsed event and record);
    items are never compared. ``sort_key`` breaks ties between equal event times and should be
    unique within a partition (an event id, or ``(topic, offset)``): then the release order
    depends on nothing but the events. Unknown topics, unassigned partitions and non-finite
    times raise :class:`ValueError`.

    Parameters
    ----------
    topics
        The input topics, all with the same partitioning.
    allowed_lateness
        ``L``, in seconds: how far behind the newest event an event may come and still be
        buffered.
    live
        Live mode lets an idle, caught-up partition's watermark follow the wall clock.
    idle_after
        Live mode: seconds without an arrival after which a caught-up partition is idle.
    replay_until
        Replay mode: the epoch second up to which the history is complete; the watermark
        reaches it once every topic is caught up.
    """

    __slots__ = (
        "_parts",
        "_seq",
        "allowed_lateness",
        "idle_after",
        "live",
        "replay_until",
        "topics",
    )

    def __init__(
        self,
        topics: Sequence[str],
        allowed_lateness: float,
        *,
        live: bool,
        idle_after: float,
        replay_until: float | None = None,
    ) -> None:
        if not topics or len(set(topics)) != len(topics):
            raise ValueError(f"topics must be distinct and at least one, got {list(topics)!r}")
        self.topics: tuple[str, ...] = tuple(topics)
        self.allowed_lateness = non_negative(allowed_lateness, "allowed_lateness")
        self.idle_after = non_negative(idle_after, "idle_after")
        self.live = live
        self.replay_until = None if replay_until is None else finite(replay_until, "replay_until")
        self._parts: dict[int, PartitionState[T]] = {}
        self._seq = itertools.count()

    @property
    def partitions(self) -> frozenset[int]:
        """The partition numbers currently assigned."""
        return frozenset(self._parts)

    def assign(self, partitions: Iterable[int], floors: Mapping[int, float] | None = None) -> None:
        """Start tracking ``partitions`` on every topic; already assigned ones are left as is.

        ``floors`` are watermarks restored from the store: a partition's watermark starts there
        (events before it are late at once) and never goes below it.
        """
        floors = floors or {}
        for partition in partitions:
            if partition not in self._parts:
                floor = floors.get(partition)
                if floor is not None:
                    floor = finite(floor, f"floor of partition {partition}")
                self._parts[partition] = PartitionState(self.topics, floor)

    def revoke(self, partitions: Iterable[int]) -> list[T]:
        """Forget ``partitions`` (a rebalance took them); their buffered items, to discard.

        The new owner re-reads those events from the committed offsets. Partitions not assigned
        are ignored. Items come in release order.
        """
        dropped: list[T] = []
        for partition in partitions:
            part = self._parts.pop(partition, None)
            if part is not None:
                dropped.extend(entry[-1] for entry in sorted(part.buffer))
        return dropped

    def low_watermark(self) -> float | None:
        """The smallest watermark over the assigned partitions that have one, or None."""
        marks = [part.watermark for part in self._parts.values() if part.watermark is not None]
        return min(marks) if marks else None

    def watermark(self, partition: int) -> float | None:
        """The watermark of ``partition`` (epoch seconds), or ``None`` while it has none."""
        return self._part(partition).watermark

    def set_highwater(self, topic: str, partition: int, highwater: int | None) -> None:
        """The log-end offset of ``topic``/``partition`` as the consumer last saw it, or unknown."""
        source = self._source(topic, partition)
        source.highwater = None if highwater is None else kafka_offset(highwater, "highwater")

    def set_position(self, topic: str, partition: int, next_offset: int) -> None:
        """The next offset the consumer reads from ``topic``/``partition``.

        Call it at assignment with the starting position, and after every fetch with the last
        record's offset + 1, whether the records were valid or not.
        """
        self._source(topic, partition).position = kafka_offset(next_offset, "next_offset")

    def observe(
        self,
        topic: str,
        partition: int,
        offset: int,
        event_time: float,
        sort_key: tuple[Any, ...],
        item: T,
        wall_now: float,
        bound: float | None = None,
    ) -> bool:
        """Take in a valid event; ``True`` if it is late (and so not buffered).

        Late means older than the partition's current watermark (or at it, once the partition is
        complete there); the caller applies a late event at once. Otherwise the event waits for
        :meth:`release`. Either way it counts as seen: it updates the topic's largest event time
        (with at most ``bound``, when given: a time the event's producer cannot move, such as
        its record's broker append time plus an allowed lead) and the partition's last arrival
        (``wall_now``). Only :meth:`advance` moves watermarks.

        >>> clock = EventClock(["t"], allowed_lateness=0.0, live=False, idle_after=0.0)
        >>> clock.assign([0])
        >>> clock.observe("t", 0, 0, 1270.0, ("fast",), "ahead", wall_now=0.0, bound=1005.0)
        False
        >>> clock.advance(wall_now=0.0)  # as far as the bound, not to 1270
        {0: 1005.0}
        """
        source = self._source(topic, partition)
        event_time = finite(event_time, "event_time")
        wall_now = finite(wall_now, "wall_now")
        kafka_offset(offset, "offset")
        part = self._parts[partition]
        part.last_arrival = wall_now
        counted = event_time if bound is None else min(event_time, finite(bound, "bound"))
        if source.max_time is None or counted > source.max_time:
            source.max_time = counted
        if part.final(event_time):
            return True
        heapq.heappush(part.buffer, (event_time, sort_key, next(self._seq), topic, offset, item))
        source.hold(offset)
        return False

    def advance(self, wall_now: float) -> dict[int, float]:
        """Recompute every partition's watermark; ``{partition: watermark}`` of those that moved.

        A partition that became complete at its unchanged watermark counts as moved: it has
        more to release. ``wall_now`` is read in live mode only. The first call after a
        partition is assigned starts its idle timer when nothing has arrived on it yet.
        """
        wall_now = finite(wall_now, "wall_now")
        moved: dict[int, float] = {}
        for partition, part in self._parts.items():
            if self.live and part.last_arrival is None:
                part.last_arrival = wall_now
            candidate, complete = self._candidate(part, wall_now)
            if candidate is None:
                continue
            if part.watermark is None or candidate > part.watermark:
                part.watermark = moved[partition] = candidate
                part.complete = complete
            elif candidate == part.watermark and complete and not part.complete:
                part.complete = True
                moved[partition] = candidate
        return moved

    def release(self, partition: int) -> list[T]:
        """Remove and return the buffered items of ``partition`` that are final.

        Those are the items before its watermark, and at it once the partition is complete
        there. They come ordered by ``(event_time, sort_key)``, whatever order they were
        observed in.
        """
        part = self._part(partition)
        released: list[T] = []
        buffer = part.buffer
        while buffer and part.final(buffer[0][0]):
            _, _, _, topic, offset, item = heapq.heappop(buffer)
            part.sources[topic].drop(offset)
            released.append(item)
        return released

    def commit_offsets(self) -> dict[tuple[str, int], int]:
        """The offset to commit per ``(topic, partition)`` whose position is known.

        That is the smallest offset still buffered there, or else the position: committing it
        never skips an event that was not released. Late and invalid records are not buffered,
        so the caller must have applied (or dead-lettered) them before it commits.
        """
        offsets: dict[tuple[str, int], int] = {}
        for partition, part in self._parts.items():
            for topic, source in part.sources.items():
                if source.position is None:
                    continue
                lowest = source.lowest_held()
                position = source.position
                offsets[topic, partition] = position if lowest is None else min(lowest, position)
        return offsets

    def buffered(self, partition: int | None = None) -> int:
        """How many events wait in ``partition``'s buffer, or in all buffers when ``None``."""
        if partition is None:
            return sum(len(part.buffer) for part in self._parts.values())
        return len(self._part(partition).buffer)

    def ahead(self, partition: int) -> list[str]:
        """Topics of ``partition`` running ahead of its slowest active topic (to pause).

        The slowest is the active topic with the smallest largest event time (one that has shown
        no event yet is slowest of all); every topic with a larger one is ahead. Pausing them
        while the buffer is too big lets the slow one catch up. Empty when all are caught up.

        >>> clock = EventClock(["a", "b", "c"], allowed_lateness=0.0, live=False, idle_after=0.0)
        >>> clock.assign([0])
        >>> clock.observe("a", 0, 0, 50.0, (), "x", wall_now=0.0)
        False
        >>> clock.observe("b", 0, 0, 10.0, (), "y", wall_now=0.0)
        False
        >>> clock.ahead(0)  # c has shown nothing yet
        ['a', 'b']
        >>> clock.observe("c", 0, 0, 20.0, (), "z", wall_now=0.0)
        False
        >>> clock.ahead(0)
        ['a', 'c']
        """
        sources = self._part(partition).sources
        active = [source.max_time for source in sources.values() if not source.caught_up]
        if not active:
            return []
        slowest = -math.inf if None in active else min(t for t in active if t is not None)
        return [
            topic
            for topic, source in sources.items()
            if source.max_time is not None and source.max_time > slowest
        ]

    def _candidate(self, part: PartitionState[T], wall_now: float) -> tuple[float | None, bool]:
        """``base - L`` (module docstring) and whether the partition is complete there.

        Lower bounds apply after subtracting ``L``: the watermark is ``replay_until`` exactly.
        """
        sources = part.sources.values()
        active = [source.max_time for source in sources if not source.caught_up]
        if active:
            if None in active:
                return None, False
            return min(t for t in active if t is not None) - self.allowed_lateness, False
        base = max((s.max_time for s in sources if s.max_time is not None), default=None)
        candidate = None if base is None else base - self.allowed_lateness
        if self.live:
            if part.last_arrival is None or wall_now - part.last_arrival < self.idle_after:
                return candidate, False
            at_least, complete = wall_now - self.allowed_lateness, False
        elif self.replay_until is not None:
            at_least, complete = self.replay_until, True
        else:
            return candidate, False
        if candidate is not None and candidate > at_least:
            return candidate, False
        return at_least, complete

    def _part(self, partition: int) -> PartitionState[T]:
        try:
            return self._parts[partition]
        except KeyError:
            raise ValueError(
                f"partition {partition!r} is not assigned to this EventClock; "
                "call assign() on rebalance"
            ) from None

    def _source(self, topic: str, partition: int) -> SourceProgress:
        part = self._part(partition)
        try:
            return part.sources[topic]
        except KeyError:
            raise ValueError(
                f"unknown topic {topic!r}; this EventClock reads {list(self.topics)!r}"
            ) from None
