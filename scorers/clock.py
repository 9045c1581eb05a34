"""Event-time clock: per-partition watermarks and the low watermark across partitions.

The stream's "now" is a watermark, not the wall clock (DESIGN decision 3): the largest event time
seen on a partition minus the allowed lateness. An event older than the watermark is *late*.
Replay of old events therefore moves the clock exactly as live processing did.

Wall-clock time enters in one place only, and only in live mode: when a partition has received
nothing for ``idle_after`` of wall time, :meth:`Watermark.advance_idle` lets its event time keep
pace with the wall clock from the last event seen (as if the source's lag stayed constant), so one
quiet partition does not hold back the timers of all the others. In replay mode (``live=False``)
it never moves the watermark. Nothing here reads the clock: the caller passes ``wall_now``.

Examples
--------
>>> from datetime import UTC, datetime, timedelta
>>> wm = Watermark(allowed_lateness=timedelta(minutes=5))
>>> wm.value is None
True
>>> wm.observe(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
False
>>> wm.value
datetime.datetime(2026, 1, 1, 11, 55, tzinfo=datetime.timezone.utc)
>>> wm.observe(datetime(2026, 1, 1, 11, 50, tzinfo=UTC))  # older than the watermark: late
True
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

__all__ = ["MultiPartitionClock", "Watermark"]

K = TypeVar("K", bound=Hashable)


def _utc(t: datetime, name: str) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {t.isoformat()}")
    return t.astimezone(UTC)


def _non_negative(delta: timedelta, name: str) -> timedelta:
    if delta < timedelta(0):
        raise ValueError(f"{name} must not be negative, got {delta}")
    return delta


class Watermark:
    """The event-time watermark of one partition; it never moves back.

    ``value`` is ``max(event time seen) - allowed_lateness``, or later if an idle advance moved it
    (live mode only); ``None`` before anything happened. In live mode every :meth:`observe` needs
    the ``wall_now`` at which the event arrived, so idleness can be measured.
    """

    __slots__ = ("_last_arrival", "_max_event_time", "_value", "allowed_lateness", "live")

    def __init__(self, allowed_lateness: timedelta, *, live: bool = False) -> None:
        self.allowed_lateness = _non_negative(allowed_lateness, "allowed_lateness")
        self.live = live
        self._max_event_time: datetime | None = None
        self._value: datetime | None = None
        self._last_arrival: datetime | None = None  # wall time of the last event (live mode)

    @property
    def value(self) -> datetime | None:
        """The watermark (UTC), or ``None`` before any event or idle advance."""
        return self._value

    @property
    def max_event_time(self) -> datetime | None:
        """The largest event time observed (UTC), or ``None``."""
        return self._max_event_time

    def observe(self, event_time: datetime, *, wall_now: datetime | None = None) -> bool:
        """Take an event into account; ``True`` if it is late (older than the watermark was).

        An event exactly at the watermark is not late. A late event still counts as seen.
        ``wall_now`` (when the event arrived) is required in live mode and ignored in replay.
        """
        event_time = _utc(event_time, "event_time")
        if self.live:
            if wall_now is None:
                raise ValueError("a live Watermark needs wall_now with every observed event")
            self._last_arrival = _utc(wall_now, "wall_now")
        late = self._value is not None and event_time < self._value
        if self._max_event_time is None or event_time > self._max_event_time:
            self._max_event_time = event_time
            self._raise_to(event_time - self.allowed_lateness)
        return late

    def advance_idle(self, wall_now: datetime, idle_after: timedelta) -> bool:
        """In live mode, move the watermark with wall time once the partition is idle.

        Idle means nothing arrived for ``idle_after`` of wall time. The watermark then becomes
        ``max_event_time + (wall_now - last arrival) - allowed_lateness`` (never less than it
        was). A partition that has seen no event starts its idle timer at the first call and
        then follows ``wall_now - allowed_lateness``. Returns whether the watermark moved; in
        replay mode it does nothing and returns ``False``.

        >>> from datetime import UTC, datetime, timedelta
        >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
        >>> wm = Watermark(timedelta(minutes=1), live=True)
        >>> wm.observe(t0, wall_now=t0 + timedelta(seconds=10))  # source lags 10 s
        False
        >>> wm.advance_idle(t0 + timedelta(minutes=10, seconds=10), timedelta(minutes=5))
        True
        >>> wm.value - t0
        datetime.timedelta(seconds=540)
        """
        wall_now = _utc(wall_now, "wall_now")
        _non_negative(idle_after, "idle_after")
        if not self.live:
            return False
        if self._last_arrival is None:
            self._last_arrival = wall_now
            return False
        idle_for = wall_now - self._last_arrival
        if idle_for < idle_after:
            return False
        base = self._max_event_time if self._max_event_time is not None else self._last_arrival
        return self._raise_to(base + idle_for - self.allowed_lateness)

    def _raise_to(self, candidate: datetime) -> bool:
        if self._value is None or candidate > self._value:
            self._value = candidate
            return True
        return False

    def __repr__(self) -> str:
        mode = "live" if self.live else "replay"
        return f"Watermark(value={self._value!r}, lateness={self.allowed_lateness}, {mode})"


class MultiPartitionClock(Generic[K]):
    """One :class:`Watermark` per assigned partition, and their minimum.

    The key ``K`` is whatever identifies a partition to the caller: a partition number, or a
    ``(topic, partition)`` pair when topics should not share a clock. The low watermark is
    monotone while the assignment stays the same; assigning a new partition (its watermark
    starts at ``None``) or revoking the slowest one can move it back or forward, so a caller that
    acts on it should keep the largest value it has acted on.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> clock = MultiPartitionClock(timedelta(0), partitions=[0, 1])
    >>> clock.observe(0, t0 + timedelta(hours=2))
    False
    >>> clock.low_watermark is None  # partition 1 has seen nothing yet
    True
    >>> clock.observe(1, t0 + timedelta(hours=1))
    False
    >>> clock.low_watermark - t0
    datetime.timedelta(seconds=3600)
    """

    __slots__ = ("_watermarks", "allowed_lateness", "live")

    def __init__(
        self, allowed_lateness: timedelta, *, live: bool = False, partitions: Iterable[K] = ()
    ) -> None:
        self.allowed_lateness = _non_negative(allowed_lateness, "allowed_lateness")
        self.live = live
        self._watermarks: dict[K, Watermark] = {}
        self.assign(partitions)

    @property
    def partitions(self) -> frozenset[K]:
        """The partitions currently assigned."""
        return frozenset(self._watermarks)

    def assign(self, partitions: Iterable[K]) -> None:
        """Start a watermark for each partition not assigned yet (kept ones are unchanged)."""
        for partition in partitions:
            if partition not in self._watermarks:
                self._watermarks[partition] = Watermark(self.allowed_lateness, live=self.live)

    def revoke(self, partitions: Iterable[K]) -> None:
        """Forget the watermarks of partitions taken away by a rebalance."""
        for partition in partitions:
            self._watermarks.pop(partition, None)

    def __getitem__(self, partition: K) -> Watermark:
        """The watermark of an assigned partition."""
        try:
            return self._watermarks[partition]
        except KeyError:
            raise KeyError(
                f"partition {partition!r} is not assigned to this clock; call assign() on rebalance"
            ) from None

    def observe(
        self, partition: K, event_time: datetime, *, wall_now: datetime | None = None
    ) -> bool:
        """:meth:`Watermark.observe` on ``partition``'s watermark; ``True`` if the event is late."""
        return self[partition].observe(event_time, wall_now=wall_now)

    def advance_idle(self, wall_now: datetime, idle_after: timedelta) -> bool:
        """:meth:`Watermark.advance_idle` on every partition; ``True`` if any moved."""
        moved = [wm.advance_idle(wall_now, idle_after) for wm in self._watermarks.values()]
        return any(moved)

    @property
    def low_watermark(self) -> datetime | None:
        """The minimum watermark over assigned partitions.

        ``None`` while any assigned partition has no watermark, or when none is assigned.
        """
        values = [wm.value for wm in self._watermarks.values()]
        if not values or any(v is None for v in values):
            return None
        return min(v for v in values if v is not None)
