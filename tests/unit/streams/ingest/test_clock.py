"""The event clock and reorder buffer: each watermark rule, late events, commits, rebalances.

The property test checks the contract against a batch oracle: whatever the interleaving and
however the work is chunked, each partition releases all its events sorted by (event time, sort
key), ties included, and nothing is late.
"""

from __future__ import annotations

import doctest
import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streams.ingest.clock
from streams.ingest.clock import EventClock

P, S, M = "crm.purchase", "crm.service", "crm.marketing"
TOPICS = (P, S, M)
L = 60.0
IDLE = 30.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def make(
    *,
    live: bool = False,
    replay_until: float | None = None,
    partitions: Sequence[int] = (0,),
    floors: dict[int, float] | None = None,
) -> EventClock[str]:
    clock: EventClock[str] = EventClock(
        TOPICS, L, live=live, idle_after=IDLE, replay_until=replay_until
    )
    clock.assign(partitions, floors)
    return clock


def catch_up(clock: EventClock[str], partition: int, *topics: str, at: int = 0) -> None:
    for topic in topics:
        clock.set_highwater(topic, partition, at)
        clock.set_position(topic, partition, at)


def lag(clock: EventClock[str], partition: int, *topics: str) -> None:
    for topic in topics:
        clock.set_highwater(topic, partition, 100)
        clock.set_position(topic, partition, 0)


def see(clock: EventClock[str], topic: str, t: float, offset: int = 0, wall: float = T0) -> bool:
    return clock.observe(topic, 0, offset, T0 + t, (topic, offset), f"{topic}@{t}", wall)


def wm(clock: EventClock[str], partition: int = 0) -> float | None:
    value = clock.watermark(partition)
    return None if value is None else value - T0


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(streams.ingest.clock)
    assert failures == 0
    assert tried > 0


def test_waits_while_an_active_topic_has_shown_no_event() -> None:
    clock = make()
    lag(clock, 0, *TOPICS)
    see(clock, P, 1000)
    see(clock, S, 2000)
    assert clock.advance(T0) == {}
    assert wm(clock) is None
    assert clock.release(0) == []
    assert see(clock, P, -10_000, offset=1) is False  # no watermark: nothing is late


def test_unknown_progress_counts_as_active() -> None:
    clock = make()
    see(clock, P, 1000)
    clock.set_position(S, 0, 5)  # high-water mark still unknown
    clock.set_highwater(M, 0, 5)  # position still unknown
    assert clock.advance(T0) == {}
    catch_up(clock, 0, S, M, at=5)
    assert clock.advance(T0) == {0: T0 + 1000 - L}


def test_the_slowest_active_topic_holds_the_watermark() -> None:
    clock = make()
    lag(clock, 0, *TOPICS)
    see(clock, P, 1000)
    see(clock, S, 500)
    see(clock, M, 800)
    assert clock.advance(T0) == {0: T0 + 500 - L}
    see(clock, S, 900, offset=1)
    assert clock.advance(T0) == {0: T0 + 800 - L}


def test_caught_up_topics_are_ignored_while_others_are_active() -> None:
    clock = make()
    lag(clock, 0, P)
    catch_up(clock, 0, S, M)
    see(clock, P, 1000)
    see(clock, S, 200)  # S caught up: it does not hold P back
    assert clock.advance(T0) == {0: T0 + 1000 - L}
    catch_up(clock, 0, M, at=3)  # M caught up having shown nothing: not waited for either
    assert wm(clock) == 1000 - L


def test_all_caught_up_takes_the_largest_event_time() -> None:
    clock = make()
    lag(clock, 0, *TOPICS)
    see(clock, P, 1000)
    see(clock, S, 400)
    see(clock, M, 700)
    clock.advance(T0)
    assert wm(clock) == 400 - L
    catch_up(clock, 0, *TOPICS, at=100)
    assert clock.advance(T0) == {0: T0 + 1000 - L}


def test_all_caught_up_with_nothing_seen_has_no_watermark_in_replay() -> None:
    clock = make()
    catch_up(clock, 0, *TOPICS)
    assert clock.advance(T0 + 10**6) == {}
    assert wm(clock) is None


def test_live_idle_partition_follows_the_wall_clock_after_idle_after_only() -> None:
    clock = make(live=True)
    catch_up(clock, 0, *TOPICS)
    see(clock, P, 0, wall=T0 + 5)
    clock.advance(T0 + 5)
    assert wm(clock) == -L
    assert clock.advance(T0 + 5 + IDLE - 1) == {}  # not idle long enough
    assert clock.advance(T0 + 5 + IDLE) == {0: T0 + 5 + IDLE - L}
    assert clock.advance(T0 + 100) == {0: T0 + 100 - L}
    see(clock, S, 90, wall=T0 + 101)  # an arrival restarts the idle timer
    assert clock.advance(T0 + 101 + IDLE - 1) == {}
    assert clock.advance(T0 + 101 + IDLE) == {0: T0 + 101 + IDLE - L}


def test_live_partition_without_arrivals_starts_its_idle_timer_at_the_first_advance() -> None:
    clock = make(live=True)
    catch_up(clock, 0, *TOPICS)
    assert clock.advance(T0) == {}
    assert clock.advance(T0 + IDLE - 1) == {}
    assert clock.advance(T0 + IDLE) == {0: T0 + IDLE - L}


def test_live_idle_advance_needs_every_topic_caught_up() -> None:
    clock = make(live=True)
    catch_up(clock, 0, P, S)
    lag(clock, 0, M)
    see(clock, P, 0, wall=T0)
    see(clock, M, 0, wall=T0)
    clock.advance(T0)
    assert clock.advance(T0 + 10 * IDLE) == {}
    assert wm(clock) == -L


def test_replay_never_moves_with_the_wall_clock() -> None:
    clock = make()
    catch_up(clock, 0, *TOPICS)
    see(clock, P, 0, wall=T0)
    clock.advance(T0)
    assert clock.advance(T0 + 10**6) == {}
    assert wm(clock) == -L


def test_replay_until_completes_the_history_once_caught_up() -> None:
    clock = make(replay_until=T0 + 5000)
    lag(clock, 0, P)
    catch_up(clock, 0, S, M)
    see(clock, P, 1000)
    assert clock.advance(T0) == {0: T0 + 1000 - L}
    catch_up(clock, 0, P, at=100)
    assert clock.advance(T0) == {0: T0 + 5000}
    see(clock, P, 9000, offset=100)  # events past replay_until still move it as usual
    assert clock.advance(T0) == {0: T0 + 9000 - L}


def test_floors_start_the_watermark_and_hold_it_up() -> None:
    clock = make(partitions=[0, 1], floors={0: T0 + 500})
    assert wm(clock, 0) == 500
    assert wm(clock, 1) is None
    catch_up(clock, 0, *TOPICS)
    assert see(clock, P, 499) is True  # before the floor: late at once
    assert see(clock, P, 500, offset=1) is False
    assert clock.advance(T0) == {}  # 500 - L stays under the floor
    assert wm(clock, 0) == 500
    see(clock, S, 1000)
    assert clock.advance(T0) == {0: T0 + 1000 - L}
    assert clock.release(0) == [f"{P}@500"]
    clock.assign([0, 1], {0: T0 + 9000, 1: T0 + 9000})  # already assigned: unchanged
    assert wm(clock, 0) == 1000 - L
    assert wm(clock, 1) is None


def test_the_watermark_never_moves_back() -> None:
    clock = make()
    catch_up(clock, 0, *TOPICS)
    see(clock, P, 1000)
    see(clock, S, 100)
    clock.advance(T0)
    assert wm(clock) == 1000 - L
    lag(clock, 0, S)  # S has new records again, its last time far behind
    assert clock.advance(T0) == {}
    assert wm(clock) == 1000 - L


def test_late_means_strictly_older_than_the_watermark() -> None:
    clock = make()
    catch_up(clock, 0, *TOPICS)
    see(clock, P, 1000)
    clock.advance(T0)
    assert see(clock, S, 1000 - L, offset=1) is False  # exactly at the watermark
    assert see(clock, S, 1000 - L - 0.001, offset=2) is True
    assert clock.buffered(0) == 2
    assert clock.release(0) == []  # more may come at the watermark's time: it waits


def test_events_at_the_watermark_wait_so_ties_leave_in_sort_key_order() -> None:
    clock = make(replay_until=T0 + 2000)
    lag(clock, 0, P, S)
    catch_up(clock, 0, M)
    clock.observe(P, 0, 0, T0 + 1000, ("b",), "b@1000", T0)
    clock.observe(S, 0, 0, T0 + 1000 + L, ("z",), "z", T0)
    clock.observe(P, 0, 1, T0 + 1000 + L, ("y",), "y", T0)
    assert clock.advance(T0) == {0: T0 + 1000}
    assert clock.release(0) == []
    assert clock.observe(S, 0, 1, T0 + 1000, ("a",), "a@1000", T0) is False
    clock.observe(S, 0, 2, T0 + 2000, ("c",), "c", T0)
    clock.observe(P, 0, 2, T0 + 2000, ("d",), "d", T0)
    assert clock.advance(T0) == {0: T0 + 2000 - L}
    assert clock.release(0) == ["a@1000", "b@1000", "y", "z"]
    catch_up(clock, 0, P, S, at=3)
    assert clock.advance(T0) == {0: T0 + 2000}  # complete at replay_until
    assert clock.release(0) == ["c", "d"]
    assert clock.advance(T0) == {}
    assert clock.observe(P, 0, 3, T0 + 2000, ("e",), "e", T0) is True  # complete: now late


def test_completing_at_an_unchanged_watermark_counts_as_a_move() -> None:
    clock = make(replay_until=T0 + 1000 - L)
    catch_up(clock, 0, S, M)
    lag(clock, 0, P)
    see(clock, P, 1000)
    see(clock, P, 1000 - L, offset=1)
    assert clock.advance(T0) == {0: T0 + 1000 - L}
    assert clock.release(0) == []
    catch_up(clock, 0, P, at=2)
    assert clock.advance(T0) == {0: T0 + 1000 - L}
    assert clock.release(0) == [f"{P}@{1000 - L}"]


def test_observe_does_not_move_the_watermark_until_advance() -> None:
    clock = make()
    catch_up(clock, 0, *TOPICS)
    see(clock, P, 1000)
    assert wm(clock) is None
    assert see(clock, P, 0, offset=1) is False
    clock.advance(T0)
    assert clock.release(0) == [f"{P}@0"]


def test_release_order_is_event_time_then_sort_key_whatever_the_arrival_order() -> None:
    def run(order: list[tuple[float, str]]) -> list[str]:
        clock = make()
        lag(clock, 0, *TOPICS)
        for offset, (t, key) in enumerate(order):
            clock.observe(P, 0, offset, T0 + t, (key,), key, T0)
        catch_up(clock, 0, *TOPICS, at=100)
        clock.advance(T0)
        return clock.release(0)

    events = [(30.0, "d"), (10.0, "b"), (10.0, "a"), (20.0, "c"), (500.0, "z")]
    assert run(events) == ["a", "b", "c", "d"]
    assert run(events[::-1]) == ["a", "b", "c", "d"]


def test_advance_reports_only_the_partitions_that_moved() -> None:
    clock = make(partitions=[0, 1, 2])
    for partition in (0, 1, 2):
        catch_up(clock, partition, *TOPICS)
    clock.observe(P, 0, 0, T0 + 100, (), "a", T0)
    clock.observe(P, 1, 0, T0 + 100, (), "b", T0)
    assert clock.advance(T0) == {0: T0 + 100 - L, 1: T0 + 100 - L}
    clock.observe(P, 1, 1, T0 + 200, (), "c", T0)
    assert clock.advance(T0) == {1: T0 + 200 - L}
    assert clock.advance(T0) == {}


def test_commit_offsets_never_pass_an_unreleased_event() -> None:
    clock = make()
    assert clock.commit_offsets() == {}  # no position known yet
    lag(clock, 0, P, S)
    catch_up(clock, 0, M)
    assert clock.commit_offsets() == {(P, 0): 0, (S, 0): 0, (M, 0): 0}
    see(clock, P, 500, offset=0)
    see(clock, P, 100, offset=1)
    see(clock, P, 900, offset=2)
    see(clock, S, 800, offset=0)
    clock.set_position(P, 0, 4)  # offset 3 was invalid: not observed
    clock.set_position(S, 0, 1)
    assert clock.commit_offsets() == {(P, 0): 0, (S, 0): 0, (M, 0): 0}
    clock.advance(T0)  # 800 - L
    assert clock.release(0) == [f"{P}@100", f"{P}@500"]
    assert clock.commit_offsets() == {(P, 0): 2, (S, 0): 0, (M, 0): 0}
    catch_up(clock, 0, P, at=4)
    catch_up(clock, 0, S, at=1)
    clock.advance(T0)  # 900 - L
    assert clock.release(0) == [f"{S}@800"]
    assert clock.commit_offsets() == {(P, 0): 2, (S, 0): 1, (M, 0): 0}
    see(clock, P, 2000, offset=4)
    clock.set_position(P, 0, 5)
    clock.advance(T0)
    assert clock.release(0) == [f"{P}@900"]
    assert clock.commit_offsets() == {(P, 0): 4, (S, 0): 1, (M, 0): 0}


def test_commit_offsets_equal_positions_when_nothing_is_buffered() -> None:
    clock = make(partitions=[0, 3], replay_until=T0)
    clock.set_position(P, 0, 17)
    clock.set_position(M, 3, 4)
    clock.observe(M, 3, 3, T0, (), "x", T0)
    assert clock.commit_offsets() == {(P, 0): 17, (M, 3): 3}
    clock.set_highwater(M, 3, 4)
    catch_up(clock, 3, P, S)
    clock.advance(T0)
    assert clock.release(3) == ["x"]
    assert clock.buffered() == 0
    assert clock.commit_offsets() == {(P, 0): 17, (M, 3): 4, (P, 3): 0, (S, 3): 0}


def test_revoke_drops_the_buffers_and_the_partitions() -> None:
    clock = make(partitions=[0, 1])
    clock.observe(P, 0, 0, T0 + 20, (), "late-ish", T0)
    clock.observe(S, 0, 0, T0 + 10, (), "first", T0)
    clock.observe(P, 1, 0, T0, (), "kept", T0)
    clock.set_position(P, 0, 1)
    assert clock.buffered() == 3
    assert clock.revoke([0, 7]) == ["first", "late-ish"]
    assert clock.partitions == {1}
    assert clock.buffered() == 1
    assert (P, 0) not in clock.commit_offsets()
    with pytest.raises(ValueError, match=r"call assign\(\) on rebalance"):
        clock.watermark(0)
    clock.assign([0])
    assert clock.buffered(0) == 0
    assert clock.watermark(0) is None


def test_ahead_names_the_topics_to_pause_for_the_lagging_one() -> None:
    clock = make()
    lag(clock, 0, *TOPICS)
    assert clock.ahead(0) == []
    see(clock, P, 1000)
    see(clock, M, 300)
    assert clock.ahead(0) == [P, M]  # S has shown nothing: everything else is ahead
    see(clock, S, 200)
    assert clock.ahead(0) == [P, M]
    see(clock, S, 300, offset=1)
    assert clock.ahead(0) == [P]  # a tie with the slowest is not ahead
    catch_up(clock, 0, S, M, at=100)
    assert clock.ahead(0) == []  # P is the only active topic
    catch_up(clock, 0, P, at=100)
    assert clock.ahead(0) == []


def test_bad_arguments_are_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="negative"):
        EventClock(TOPICS, -1.0, live=False, idle_after=0.0)
    with pytest.raises(ValueError, match="negative"):
        EventClock(TOPICS, L, live=True, idle_after=-1.0)
    with pytest.raises(ValueError, match="finite"):
        EventClock(TOPICS, math.inf, live=True, idle_after=1.0)
    with pytest.raises(ValueError, match="finite"):
        EventClock(TOPICS, L, live=False, idle_after=1.0, replay_until=math.nan)
    with pytest.raises(ValueError, match="distinct"):
        EventClock([P, P], L, live=False, idle_after=1.0)
    with pytest.raises(ValueError, match="finite"):
        make(floors={0: math.inf})
    clock = make()
    with pytest.raises(ValueError, match=r"unknown topic 'crm\.other'"):
        clock.set_position("crm.other", 0, 1)
    with pytest.raises(ValueError, match=r"partition 5 is not assigned.*call assign\(\)"):
        clock.observe(P, 5, 0, T0, (), "x", T0)
    with pytest.raises(ValueError, match="not assigned"):
        clock.release(5)
    with pytest.raises(ValueError, match="not assigned"):
        clock.ahead(5)
    with pytest.raises(ValueError, match="not assigned"):
        clock.buffered(5)
    with pytest.raises(ValueError, match="finite"):
        clock.observe(P, 0, 0, math.nan, (), "x", T0)
    with pytest.raises(ValueError, match="finite"):
        clock.observe(P, 0, 0, T0, (), "x", math.inf)
    with pytest.raises(ValueError, match="finite"):
        clock.advance(math.nan)
    with pytest.raises(ValueError, match="offset"):
        clock.set_highwater(P, 0, -1)
    with pytest.raises(ValueError, match="offset"):
        clock.observe(P, 0, -1, T0, (), "x", T0)
    assert clock.buffered() == 0


# The property test: events per topic-partition, disordered by at most L, in any interleaving.

Event = tuple[str, int, int, float]  # topic, partition, offset, event time
Source = tuple[str, int]


@st.composite
def histories(draw: st.DrawFn) -> dict[Source, list[Event]]:
    """Per topic-partition, events in offset order, each no older than the newest before - L."""
    base = draw(st.integers(0, 50))
    history: dict[Source, list[Event]] = {}
    for topic in TOPICS:
        for partition in range(3):
            steps = draw(st.lists(st.integers(-2, 6).map(lambda k: k * L / 2), max_size=12))
            newest = T0 + draw(st.integers(0, 100))
            events: list[Event] = []
            for offset, step in enumerate(steps, start=base):
                t = newest + step if events else newest
                newest = max(newest, t)
                events.append((topic, partition, offset, t))
            history[topic, partition] = events
    return history


def replay(
    history: dict[Source, list[Event]], data: st.DataObject
) -> tuple[dict[int, list[Event]], list[Event]]:
    """Consume the history in a random interleaving; what each partition released, in order.

    Along the way: watermarks only move forward, and no committed offset passes an event that
    was observed but not released.
    """
    last = max((e[3] for events in history.values() for e in events), default=T0)
    clock: EventClock[Event] = EventClock(TOPICS, L, live=False, idle_after=0.0, replay_until=last)
    clock.assign(range(3))
    for (topic, partition), events in history.items():
        start = events[0][2] if events else 0
        clock.set_highwater(topic, partition, start + len(events))
        clock.set_position(topic, partition, start)
    turns = [source for source, events in history.items() for _ in events]
    turns = data.draw(st.permutations(turns), label="which topic-partition is read next")
    remaining = {source: iter(events) for source, events in history.items()}
    order = [next(remaining[source]) for source in turns]  # each one stays in offset order
    released: dict[int, list[Event]] = {p: [] for p in range(3)}
    buffered: set[Event] = set()
    lates: list[Event] = []
    watermarks: dict[int, float] = {}

    def advance_and_release() -> None:
        for partition, value in clock.advance(T0).items():
            assert value >= watermarks.get(partition, -math.inf)
            watermarks[partition] = value
        for partition in range(3):
            out = clock.release(partition)
            released[partition].extend(out)
            buffered.difference_update(out)
        for (topic, partition), committed in clock.commit_offsets().items():
            held = [e[2] for e in buffered if e[:2] == (topic, partition)]
            assert committed <= min(held, default=committed)

    for event in order:
        topic, partition, offset, t = event
        if clock.observe(topic, partition, offset, t, (topic, offset), event, T0):
            lates.append(event)
        else:
            buffered.add(event)
        clock.set_position(topic, partition, offset + 1)
        if data.draw(st.booleans(), label="advance and release here"):
            advance_and_release()
    advance_and_release()
    assert clock.buffered() == 0
    assert clock.commit_offsets() == {
        source: (events[-1][2] + 1 if events else 0) for source, events in history.items()
    }
    return released, lates


@settings(max_examples=150, deadline=None)
@given(history=histories(), data=st.data())
def test_releases_each_partition_in_event_time_order_whatever_the_interleaving(
    history: dict[Source, list[Event]], data: st.DataObject
) -> None:
    first, lates = replay(history, data)
    assert lates == []
    for partition in range(3):
        events = [e for (_, p), evs in history.items() if p == partition for e in evs]
        assert first[partition] == sorted(events, key=lambda e: (e[3], (e[0], e[2])))
    second, lates = replay(history, data)
    assert lates == []
    assert second == first


def test_low_watermark_is_the_smallest_known_one() -> None:
    clock: EventClock[str] = EventClock(["a"], 0.0, live=False, idle_after=0.0)
    clock.assign([0, 1, 2], floors={0: 50.0, 1: 20.0})
    assert clock.low_watermark() == 20.0
    clock.revoke([1])
    assert clock.low_watermark() == 50.0
    clock.revoke([0])
    assert clock.low_watermark() is None
