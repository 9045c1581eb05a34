"""Event-time watermarks: monotone, late detection, idle advance only when live."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

import scorers.clock
from scorers.clock import MultiPartitionClock, Watermark

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATE = timedelta(minutes=5)
IDLE = timedelta(minutes=2)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(scorers.clock)
    assert failures == 0
    assert tried > 0


def test_no_value_before_any_event() -> None:
    wm = Watermark(LATE)
    assert wm.value is None
    assert wm.max_event_time is None
    assert wm.observe(at(0)) is False  # the first event is never late
    assert wm.value == at(-5)
    assert wm.max_event_time == at(0)


def test_late_means_strictly_older_than_the_watermark_before_the_event() -> None:
    wm = Watermark(LATE)
    wm.observe(at(10))
    assert wm.observe(at(5)) is False  # exactly at the watermark
    assert wm.observe(at(4.99)) is True
    assert wm.value == at(5)  # a late event does not move it
    assert wm.observe(at(12)) is False
    assert wm.value == at(7)
    assert wm.observe(at(6)) is True


def test_monotone_under_out_of_order_events() -> None:
    wm = Watermark(LATE)
    seen: list[datetime] = []
    for minute in (10, 3, 12, 11, 0, 30, 29):
        wm.observe(at(minute))
        assert wm.value is not None
        seen.append(wm.value)
    assert seen == sorted(seen)
    assert wm.value == at(25)


def test_zero_lateness_and_other_time_zones() -> None:
    wm = Watermark(timedelta(0))
    wm.observe(datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))))
    assert wm.value == T0
    assert wm.value is not None
    assert wm.value.tzinfo is UTC


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Watermark(-LATE)
    wm = Watermark(LATE, live=True)
    with pytest.raises(ValueError, match="timezone-aware"):
        wm.observe(datetime(2026, 1, 1), wall_now=T0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="needs wall_now"):
        wm.observe(T0)
    with pytest.raises(ValueError, match="negative"):
        wm.advance_idle(T0, -IDLE)


def test_idle_never_advances_in_replay_mode() -> None:
    wm = Watermark(LATE)
    wm.observe(at(0), wall_now=at(1000))  # wall time is ignored in replay
    assert wm.advance_idle(at(10_000), IDLE) is False
    assert wm.advance_idle(at(20_000), IDLE) is False
    assert wm.value == at(-5)


def test_idle_advance_in_live_mode_keeps_the_source_lag() -> None:
    wm = Watermark(LATE, live=True)
    wm.observe(at(0), wall_now=at(1))  # the source lags one minute
    assert wm.advance_idle(at(2), IDLE) is False  # idle for 1 minute only
    assert wm.value == at(-5)
    assert wm.advance_idle(at(3), IDLE) is True  # idle for 2 minutes
    assert wm.value == at(2 - 5)  # event time assumed to have moved on by 2 minutes
    assert wm.advance_idle(at(11), IDLE) is True
    assert wm.value == at(10 - 5)
    # the next event, with the same lag, is not late
    assert wm.observe(at(10), wall_now=at(11)) is False
    assert wm.advance_idle(at(12), IDLE) is False  # activity again resets the idle timer


def test_a_live_partition_that_never_saw_an_event_follows_the_wall_clock_once_idle() -> None:
    wm = Watermark(LATE, live=True)
    assert wm.advance_idle(at(0), IDLE) is False  # starts the idle timer
    assert wm.value is None
    assert wm.advance_idle(at(1), IDLE) is False
    assert wm.advance_idle(at(2), IDLE) is True
    assert wm.value == at(2) - LATE


def test_idle_advance_never_moves_back() -> None:
    wm = Watermark(LATE, live=True)
    wm.observe(at(100), wall_now=at(0))  # event time ahead of the wall clock (skew)
    assert wm.advance_idle(at(3), IDLE) is True
    assert wm.value == at(103 - 5)
    wm.observe(at(50), wall_now=at(3))  # an old event restarts the idle timer
    assert wm.advance_idle(at(5), IDLE) is False  # 100 + 2 - 5 < 98: stays
    assert wm.value == at(98)


def test_multi_partition_low_watermark() -> None:
    clock: MultiPartitionClock[int] = MultiPartitionClock(LATE, partitions=[0, 1, 2])
    assert clock.partitions == {0, 1, 2}
    assert clock.low_watermark is None
    clock.observe(0, at(30))
    clock.observe(1, at(10))
    assert clock.low_watermark is None  # partition 2 has not seen anything
    clock.observe(2, at(20))
    assert clock.low_watermark == at(5)
    assert clock.observe(1, at(4)) is True
    clock.observe(1, at(40))
    assert clock.low_watermark == at(15)
    assert clock[0].value == at(25)
    clock.revoke([2])
    assert clock.low_watermark == at(25)
    clock.assign([0, 3])
    assert clock[0].value == at(25)  # kept
    assert clock.low_watermark is None  # the new partition has no watermark yet
    with pytest.raises(KeyError, match="not assigned"):
        clock.observe(2, at(50))
    assert MultiPartitionClock(LATE).low_watermark is None


def test_multi_partition_idle_advance_lets_a_quiet_partition_catch_up() -> None:
    clock: MultiPartitionClock[tuple[str, int]] = MultiPartitionClock(LATE, live=True)
    busy, quiet = ("crm.purchase", 0), ("crm.purchase", 1)
    clock.assign([busy, quiet])
    clock.observe(quiet, at(0), wall_now=at(0))
    for minute in range(1, 11):
        clock.observe(busy, at(minute), wall_now=at(minute))
        clock.advance_idle(at(minute), IDLE)
    assert clock[busy].value == at(10 - 5)
    assert clock[quiet].value == at(10 - 5)
    assert clock.low_watermark == at(5)
    replay: MultiPartitionClock[int] = MultiPartitionClock(LATE, partitions=[0, 1])
    replay.observe(0, at(0))
    replay.observe(1, at(10))
    assert replay.advance_idle(at(1000), IDLE) is False
    assert replay.low_watermark == at(-5)


# Hypothesis: arrivals as (event minute offset, wall-clock minutes since the previous arrival),
# with idle ticks in between in live mode.
arrivals = st.lists(
    st.tuples(st.integers(-600, 600), st.integers(0, 10), st.booleans()),
    min_size=1,
    max_size=60,
)


@given(arrivals=arrivals, lateness=st.integers(0, 30))
def test_replay_watermark_is_exactly_max_event_time_minus_lateness(
    arrivals: list[tuple[int, int, bool]], lateness: int
) -> None:
    wm = Watermark(timedelta(minutes=lateness))
    highest: datetime | None = None
    for event, _, tick in arrivals:
        before = wm.value
        late = wm.observe(at(event))
        assert late == (before is not None and at(event) < before)
        highest = at(event) if highest is None else max(highest, at(event))
        assert wm.value == highest - timedelta(minutes=lateness)
        if tick:
            assert wm.advance_idle(at(event) + timedelta(days=1), timedelta(0)) is False


@given(arrivals=arrivals, lateness=st.integers(0, 30), idle=st.integers(1, 20))
def test_live_watermark_is_monotone_and_bounded(
    arrivals: list[tuple[int, int, bool]], lateness: int, idle: int
) -> None:
    lag = timedelta(minutes=lateness)
    wm = Watermark(lag, live=True)
    wall = at(1000)  # event times never lie ahead of the wall clock
    highest: datetime | None = None
    advanced = False
    previous: datetime | None = None
    for event, gap, tick in arrivals:
        wall += timedelta(minutes=gap)
        if tick:
            advanced |= wm.advance_idle(wall, timedelta(minutes=idle))
        else:
            wm.observe(at(event), wall_now=wall)
            highest = at(event) if highest is None else max(highest, at(event))
        value = wm.value
        if value is None:
            continue
        assert previous is None or value >= previous  # never goes back
        previous = value
        assert value <= max(wall, highest or wall) - lag  # never ahead of any time seen
        if highest is not None:
            assert value >= highest - lag
            if not advanced:
                assert value == highest - lag
