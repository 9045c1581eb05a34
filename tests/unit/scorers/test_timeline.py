"""The customer timeline: checkpoints at known times, alert rules, and walks in any pieces agree."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.outputs import AlertType
from scorers.alerts import AlertPolicy
from scorers.bgnbd import p_alive_crossing_time
from scorers.probability import ProbabilityModel
from scorers.profile import Profile
from scorers.segments import load_segments
from scorers.timeline import Checkpoint, CustomerState, Timeline
from tests.unit.hand_built import BOUNDS, DAY, MODEL, T0


def _timeline(model: ProbabilityModel | None = MODEL) -> Timeline:
    return Timeline(AlertPolicy(0.3, 90.0), load_segments(), BOUNDS, model)


def _after(purchases: list[int], amount: int = 2000) -> Profile:
    return Profile(
        first_purchase_at=min(purchases),
        last_purchase_at=max(purchases),
        orders=len(purchases),
        gross_minor=amount * len(purchases),
        last_purchase_event_at=max(purchases),
    )


def _walk(
    timeline: Timeline, purchases: list[int], cuts: list[int], end: int
) -> tuple[CustomerState, list[Checkpoint]]:
    """Walk purchases as the streaming rounds do: the watermark stops at each cut, then end."""
    state, profile, points = CustomerState(), Profile(), []
    marks = sorted({*cuts, end})
    done: list[int] = []
    for watermark in marks:
        for at in [t for t in purchases if t <= watermark and t not in done]:
            state, silent = timeline.silence("c", state, profile, at, upto=False)
            points += silent
            done.append(at)
            profile = _after(done)
            state, point = timeline.event("c", state, profile, at, purchase=True, clv=1.0)
            points.append(point)
        state, silent = timeline.silence("c", state, profile, watermark, upto=True)
        points += silent
    return state, points


def test_silence_checkpoints_fall_just_after_each_recency_boundary() -> None:
    timeline = _timeline(model=None)
    state, points = _walk(timeline, [T0, T0 + 10 * DAY, T0 + 20 * DAY], [], T0 + 400 * DAY)
    last = T0 + 20 * DAY
    timers = [p for p in points if p.trigger == "timer"]
    assert [p.at for p in timers if p.at < last] == [T0 + 7 * DAY + 1, T0 + 10 * DAY + 7 * DAY + 1]
    timers = [p for p in timers if p.at > last]
    assert [p.at for p in timers] == [last + d * DAY + 1 for d in (7, 30, 90, 180)]
    assert [p.quintiles[0] for p in timers if p.quintiles] == [4, 3, 2, 1]
    assert state.evaluated_at == timers[-1].at
    assert timeline.next_due(state, _after([T0, T0 + 10 * DAY, last]), state.evaluated_at) is None


def test_segment_changes_raise_alerts_with_from_and_to() -> None:
    timeline = _timeline(model=None)
    _, points = _walk(timeline, [T0, T0 + 10 * DAY, T0 + 20 * DAY], [], T0 + 400 * DAY)
    segments = [p.segment for p in points]
    alerts = [a for p in points for a in p.alerts]
    changes = sum(1 for a, b in pairwise(segments) if a != b)
    assert len(alerts) == changes > 0
    first = alerts[0]
    assert first.alert_type is AlertType.SEGMENT_CHANGED
    assert first.details["from"] != first.details["to"]
    assert first.idempotency_key.startswith("segment_changed:c:")


def test_win_back_after_a_long_silence_says_how_long_and_the_usual_gap() -> None:
    timeline = _timeline(model=None)
    purchases = [T0, T0 + 10 * DAY, T0 + 20 * DAY, T0 + 120 * DAY]
    _, points = _walk(timeline, purchases, [], T0 + 121 * DAY)
    wins = [a for p in points for a in p.alerts if a.alert_type is AlertType.WIN_BACK]
    assert len(wins) == 1
    assert wins[0].idempotency_key == f"win_back:c:{T0 + 120 * DAY}"
    assert wins[0].reasons == ["first purchase in 100 days", "usually bought every 10 days"]


def test_high_value_at_risk_fires_once_just_after_the_solved_crossing() -> None:
    timeline = _timeline()
    purchases = [T0, T0 + 14 * DAY, T0 + 28 * DAY]
    _, points = _walk(timeline, purchases, [], T0 + 3 * 365 * DAY)
    crossing = MODEL.p_alive_below_at(_after(purchases), 0.3)
    assert crossing is not None
    risky = [
        (p, a) for p in points for a in p.alerts if a.alert_type is AlertType.HIGH_VALUE_AT_RISK
    ]
    assert len(risky) == 1
    point, alert = risky[0]
    assert point.at == int(crossing.timestamp()) + 1
    assert alert.idempotency_key == f"high_value_at_risk:c:{T0 + 28 * DAY}"
    assert alert.reasons[0].startswith("no purchase for ")
    score = MODEL.score(point.profile, datetime.fromtimestamp(point.at, UTC))
    assert score is not None and score.p_alive < 0.3


def test_no_at_risk_alert_below_the_value_tier() -> None:
    timeline = _timeline(replace(MODEL, high_value_clv=1e12))
    _, points = _walk(timeline, [T0, T0 + 14 * DAY], [], T0 + 3 * 365 * DAY)
    assert not [a for p in points for a in p.alerts if a.alert_type is AlertType.HIGH_VALUE_AT_RISK]


def test_a_late_event_updates_the_state_but_raises_nothing() -> None:
    timeline = _timeline(model=None)
    state, _ = _walk(timeline, [T0, T0 + 200 * DAY], [], T0 + 201 * DAY)
    late = _after([T0, T0 + 5 * DAY, T0 + 200 * DAY])
    after, point = timeline.event("c", state, late, T0 + 5 * DAY, purchase=True, clv=1.0, late=True)
    assert point.alerts == []
    assert after.segment == state.segment and after.evaluated_at == state.evaluated_at


def test_state_round_trips_through_bytes_and_tolerates_garbage() -> None:
    state = CustomerState(12, "Champions", 10, True, 123.5, 10)
    assert CustomerState.from_bytes(state.to_bytes()) == state
    assert CustomerState.from_bytes(None) == CustomerState()
    assert CustomerState.from_bytes(b"not json") == CustomerState()


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=200 * DAY), min_size=1, max_size=8),
    cut_fractions=st.lists(st.floats(min_value=0, max_value=1), max_size=6),
)
def test_walking_in_any_pieces_gives_the_same_checkpoints(
    gaps: list[int], cut_fractions: list[float]
) -> None:
    purchases = [T0]
    for gap in gaps:
        purchases.append(purchases[-1] + gap)
    end = purchases[-1] + 2 * 365 * DAY
    cuts = [T0 + int(f * (end - T0)) for f in cut_fractions]
    timeline = _timeline()
    whole = _walk(timeline, purchases, [], end)
    pieces = _walk(timeline, purchases, cuts, end)
    assert pieces[0] == whole[0]
    assert [(p.at, p.trigger, p.segment, p.alerts) for p in pieces[1]] == [
        (p.at, p.trigger, p.segment, p.alerts) for p in whole[1]
    ]


@settings(max_examples=200, deadline=None)
@given(
    orders=st.integers(min_value=1, max_value=500),
    span=st.integers(min_value=0, max_value=10 * 365 * DAY),
    threshold=st.floats(min_value=0.01, max_value=0.99),
)
def test_plain_float_crossing_equals_the_vectorised_one(
    orders: int, span: int, threshold: float
) -> None:
    profile = Profile(first_purchase_at=T0, last_purchase_at=T0 + span, orders=orders)
    fast = MODEL.p_alive_crossing_epoch(profile, threshold)
    weeks = p_alive_crossing_time(MODEL.bgnbd, orders - 1, span / (7 * DAY), threshold)
    if weeks is None or weeks > 100 * 365.25 / 7:
        assert fast is None
    else:
        assert fast is not None
        assert abs(fast - (T0 + weeks * 7 * DAY)) <= 1e-6 * max(1.0, weeks * 7 * DAY)
