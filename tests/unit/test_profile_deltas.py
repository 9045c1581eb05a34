"""Profile deltas: folding them over unique events equals a from-scratch recomputation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas import Event, example_event
from scorers.deltas import delta_for
from scorers.profile import FIELD_CODES, Profile, apply_delta
from tests.oracle import recompute_profiles
from tests.strategies import events

RATES = {"USD": 1.0}


def fold(history: list[Event]) -> dict[str, Profile]:
    profiles: dict[str, Profile] = {}
    for event in history:
        current = profiles.get(event.customer_id, Profile())
        profiles[event.customer_id] = apply_delta(current, delta_for(event, RATES))
    return profiles


@given(st.lists(events(), max_size=60, unique_by=lambda e: e.event_id), st.randoms())
def test_fold_in_any_order_equals_batch_recomputation(history: list[Event], rnd: object) -> None:
    shuffled = list(history)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fold(shuffled) == recompute_profiles(history)


def test_field_codes_are_unique_and_short() -> None:
    codes = list(FIELD_CODES.values())
    assert len(set(codes)) == len(codes)
    assert all(len(code) <= 2 for code in codes)
    assert not {"op", "os", "om"} & set(codes)  # reserved for per-topic offsets


def test_order_and_return_policy_is_net_of_refunds() -> None:
    order = example_event("order_placed")
    returned = example_event("order_returned")
    profile = fold([order, returned])[order.customer_id]
    assert profile.orders == 1 and profile.returns == 1
    assert profile.monetary_minor == order.payload.amount_minor - returned.payload.amount_minor  # type: ignore[union-attr]
    assert profile.first_purchase_at == profile.last_purchase_at


def test_resolution_time_and_satisfaction() -> None:
    resolved = example_event("ticket_resolved")
    profile = fold([resolved])[resolved.customer_id]
    assert profile.tickets_resolved == 1
    assert profile.mean_satisfaction == 2.0
    assert profile.mean_resolution_seconds is not None and profile.mean_resolution_seconds > 0
