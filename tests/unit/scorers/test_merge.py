"""Merging two customers' profiles equals the batch recomputation over both histories."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas import Event, PurchaseEvent, example_event
from scorers.deltas import delta_for
from scorers.merge import merge_profiles
from scorers.profile import Profile, apply_delta
from tests.oracle import recompute_profiles
from tests.strategies import events

RATES = {"USD": 1.0}
DAY = 86_400


def _fold(history: list[Event]) -> Profile:
    """The profile a worker keeps: events applied in event-time order."""
    profile = Profile()
    for event in sorted(history, key=lambda e: e.event_time):
        profile = apply_delta(profile, delta_for(event, RATES))
    return profile


def _order_days(history: list[Event]) -> list[int]:
    return sorted(
        {
            int(e.event_time.timestamp()) // DAY
            for e in history
            if isinstance(e, PurchaseEvent) and e.type == "order_placed"
        }
    )


@given(st.lists(events(customers=2), max_size=50, unique_by=lambda e: e.event_id))
def test_a_merged_profile_is_the_fold_of_both_histories(history: list[Event]) -> None:
    mine = [e for e in history if e.customer_id == "c-0"]
    theirs = [e for e in history if e.customer_id == "c-1"]
    merged = merge_profiles(_fold(mine), _fold(theirs))
    assert merged == merge_profiles(_fold(theirs), _fold(mine))  # either may survive
    as_one = [e.model_copy(update={"customer_id": "c-0"}) for e in history]
    oracle = recompute_profiles(as_one).get("c-0", Profile())
    assert merged._replace(purchase_days=0) == oracle._replace(purchase_days=0)
    # Days both ordered on count once when they are first or last days of both, else twice.
    days_a, days_b = _order_days(mine), _order_days(theirs)
    ends = {d for d in days_a if d in (days_a[0], days_a[-1])} & {
        d for d in days_b if d in (days_b[0], days_b[-1])
    }
    twice = len((set(days_a) & set(days_b)) - ends)
    assert merged.purchase_days == oracle.purchase_days + twice


def test_a_merge_with_a_customer_without_events_changes_nothing() -> None:
    profile = _fold([example_event(t) for t in ("order_placed", "ticket_opened", "message_opened")])
    assert profile.orders == 1 and profile.tickets_opened == 1  # a customer with events
    assert merge_profiles(profile, Profile()) == profile == merge_profiles(Profile(), profile)
