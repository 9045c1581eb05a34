"""RoundScorer without Kafka or Redis: one round's walk over events and silences."""

from __future__ import annotations

import orjson

from scorers.alerts import AlertPolicy
from scorers.segments import load_segments
from scorers.timeline import CustomerState, Timeline
from streams.round.messages import Applied
from streams.round.scorer import CustomerBefore, RoundScorer
from tests.unit.hand_built import BOUNDS, DAY, T0, Record, profile_of, purchase_event

LIMIT = T0 + 400 * DAY


def _scorer() -> RoundScorer:
    return RoundScorer(Timeline(AlertPolicy(), load_segments(), BOUNDS, None))


def test_events_and_the_silences_between_them_come_out_in_event_time_order() -> None:
    first, second = T0 + 10 * DAY, T0 + 50 * DAY  # R drops 7 and 30 days after `first`
    after_first, after_second = profile_of(T0, first), profile_of(T0, first, second)
    applied = [
        Applied(Record(), purchase_event(first, "e1"), after_first, float(first), False),
        Applied(Record(), purchase_event(second, "e2"), after_second, float(second), False),
    ]
    before = {"c": CustomerBefore(profile_of(T0), CustomerState(evaluated_at=T0), 0)}

    out = _scorer().score(applied, before, {0: second + DAY})

    snapshots = [orjson.loads(m.value) for m in out.snapshots]
    assert [(s["trigger"], s["event_id"]) for s in snapshots] == [
        ("timer", None),  # T0 + 7 days + 1 s, before the first event
        ("event", "e1"),
        ("timer", None),  # first + 7 days + 1 s
        ("timer", None),  # first + 30 days + 1 s
        ("event", "e2"),
    ]
    assert out.timer_checkpoints == 3
    assert out.states["c"].evaluated_at == second
    ((customer, due),) = out.due[0]
    assert customer == "c" and due == second + 7 * DAY + 1  # the next boundary after the round


def test_a_customer_popped_without_events_is_re_scored_to_the_limit() -> None:
    last = T0 + 10 * DAY
    state = CustomerState(evaluated_at=last, segment="Champions", last_purchase_at=last)
    before = {"c": CustomerBefore(profile_of(T0, last), state, 0)}

    out = _scorer().score([], before, {0: LIMIT})

    snapshots = [orjson.loads(m.value) for m in out.snapshots]
    assert {s["trigger"] for s in snapshots} == {"timer"}
    assert [s["r_score"] for s in snapshots] == [4, 3, 2, 1]
    assert out.alerts and all(key.startswith("segment_changed:c:") for _, key, _ in out.alerts)
    assert out.due[0] == [("c", None)]  # R is 1: nothing more is due


def test_a_late_event_is_scored_but_raises_no_alert() -> None:
    late_at = T0 + 100 * DAY  # the watermark (LIMIT) passed it long ago
    state = CustomerState(evaluated_at=LIMIT, segment="Lost", last_purchase_at=T0)
    applied = [
        Applied(
            Record(), purchase_event(late_at, "late"), profile_of(T0, late_at), float(late_at), True
        )
    ]
    before = {"c": CustomerBefore(profile_of(T0), state, 0)}

    out = _scorer().score(applied, before, {0: LIMIT})

    assert [orjson.loads(m.value)["event_id"] for m in out.snapshots] == ["late"]
    assert out.alerts == []
    assert out.states["c"].last_purchase_at == late_at
