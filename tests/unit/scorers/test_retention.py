"""Retention: the pure decision (scorers/retention.py) and the round's walk of it, where an
event that finds a customer's data expired must give what the expiry timer firing first gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest

from scorers.alerts import AlertPolicy
from scorers.deltas import delta_for
from scorers.profile import Profile, apply_delta
from scorers.retention import due_with_retention, expires_at, retention_seconds, starts_afresh
from scorers.segments import load_segments
from scorers.timeline import CustomerState, Timeline
from streams.round.messages import Applied
from streams.round.scorer import CustomerBefore, RoundScorer, ScoredRound
from tests.oracle import recompute_profiles
from tests.unit.hand_built import BOUNDS, DAY, T0, Record, purchase_event

RETENTION = 40 * DAY  # the RFM recency cuts at 7 and 30 days fall before the expiry


def _fold(*events: Any) -> Profile:
    profile = Profile()
    for event in events:
        profile = apply_delta(profile, delta_for(event, {"USD": 1.0}))
    assert profile == recompute_profiles(list(events))["c"]  # the batch oracle agrees
    return profile


def _round(
    retention: int | None,
    before: CustomerBefore,
    events: list[Any],
    profiles: list[Profile],
    limit: int,
) -> ScoredRound:
    scorer = RoundScorer(
        Timeline(AlertPolicy(), load_segments(), BOUNDS, None), retention=retention
    )
    applied = [
        Applied(Record(), e, p, float(e.event_time.timestamp()), False)
        for e, p in zip(events, profiles, strict=True)
    ]
    return scorer.score(applied, {"c": before}, {0: limit})


def _snapshots(out: ScoredRound) -> list[dict[str, Any]]:
    return [orjson.loads(m.value) for m in out.snapshots]


def test_the_decision_is_the_newest_event_of_any_kind_plus_the_retention() -> None:
    profile = Profile(last_purchase_event_at=T0, last_marketing_event_at=T0 + DAY)
    assert retention_seconds(None) is None and retention_seconds(1.5) == 129_600
    assert expires_at(profile, RETENTION) == T0 + DAY + RETENTION
    assert expires_at(Profile(), RETENTION) is None  # no event: nothing to expire
    assert not starts_afresh(profile, T0 + DAY + RETENTION - 1, RETENTION)
    assert starts_afresh(profile, T0 + DAY + RETENTION, RETENTION)
    assert not starts_afresh(profile, T0 + 10_000 * DAY, None)  # off
    assert due_with_retention(T0 + 5 * DAY, profile, RETENTION) == T0 + 5 * DAY
    assert due_with_retention(None, profile, RETENTION) == T0 + DAY + RETENTION
    assert due_with_retention(T0 + 99 * DAY, profile, None) == T0 + 99 * DAY


@pytest.fixture
def first() -> tuple[Any, Profile, CustomerState]:
    """A customer's first order at T0, as its round leaves it."""
    order = purchase_event(T0, "o1")
    profile = _fold(order)
    out = _round(RETENTION, CustomerBefore(None, CustomerState(), 0), [order], [profile], T0)
    return order, profile, out.states["c"]


def test_a_customer_silent_past_the_retention_expires_with_its_earlier_timers(
    first: tuple[Any, Profile, CustomerState],
) -> None:
    _, profile, state = first
    expiry = T0 + RETENTION
    alive = _round(RETENTION, CustomerBefore(profile, state, 0), [], [], expiry - 1)
    assert alive.expired == {} and alive.due[0] == [("c", expiry)]
    out = _round(RETENTION, CustomerBefore(profile, state, 0), [], [], expiry + 5 * DAY)
    assert out.expired == {"c": (0, T0)}
    assert out.due[0] == [("c", None)] and "c" not in out.states
    times = [datetime.fromisoformat(s["as_of"]).timestamp() for s in _snapshots(out)]
    assert times and all(t < expiry for t in times)  # the recency timers before it
    kept = _round(None, CustomerBefore(profile, state, 0), [], [], expiry + 5 * DAY)
    assert kept.expired == {} and kept.due[0][0][1] is not None  # retention off


def test_an_event_that_finds_the_data_expired_gives_what_the_timer_first_gave(
    first: tuple[Any, Profile, CustomerState],
) -> None:
    _, old, state = first
    back = purchase_event(T0 + RETENTION + 20 * DAY, "o2")
    fresh = _fold(back)  # the apply script cleared the expired profile before applying it
    # The timer fires first (one round), then the event comes (the next round) ...
    expired = _round(RETENTION, CustomerBefore(old, state, 0), [], [], T0 + RETENTION + DAY)
    new = _round(RETENTION, CustomerBefore(None, CustomerState(), 0), [back], [fresh], _at(back))
    # ... or both in one round, the event finding the old data still there.
    both = _round(RETENTION, CustomerBefore(old, state, 0), [back], [fresh], _at(back))
    assert both.reset == {"c"} and both.expired == {}
    assert _snapshots(both) == _snapshots(expired) + _snapshots(new)
    assert [m.value for _, _, m in both.alerts] == [
        m.value for _, _, m in expired.alerts + new.alerts
    ]
    assert both.states == new.states and both.due == new.due


def _at(event: Any) -> int:
    return int(event.event_time.timestamp())
