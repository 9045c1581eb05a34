"""Profile deltas: folding them over unique events equals a from-scratch recomputation."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from schemas import Event, PurchaseEvent, example_event
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


def _without_day_count(profiles: dict[str, Profile]) -> dict[str, Profile]:
    return {c: p._replace(purchase_days=0) for c, p in profiles.items()}


@given(st.lists(events(), max_size=60, unique_by=lambda e: e.event_id), st.randoms())
def test_fold_in_any_order_equals_batch_recomputation(history: list[Event], rnd: object) -> None:
    """Every field commutes but the transaction-day count, which is exact in event-time order
    (how the event clock releases events) and never under the truth otherwise."""
    shuffled = list(history)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    oracle = recompute_profiles(history)
    assert fold(sorted(shuffled, key=lambda e: e.event_time)) == oracle
    out_of_order = fold(shuffled)
    assert _without_day_count(out_of_order) == _without_day_count(oracle)
    assert all(p.purchase_days >= oracle[c].purchase_days for c, p in out_of_order.items())


def test_same_day_orders_are_one_transaction() -> None:
    order = example_event("order_placed")
    assert isinstance(order, PurchaseEvent)
    day = 86_400

    def at(seconds: int, amount: int, n: int) -> Event:
        payload = order.payload.model_copy(update={"amount_minor": amount})
        moment = datetime.fromtimestamp(seconds, UTC)
        return order.model_copy(
            update={"event_time": moment, "event_id": f"e{n}", "payload": payload}
        )

    times = [(10 * day + 60, 500), (10 * day + 7200, 700), (12 * day, 300), (12 * day + 5, 100)]
    history = [at(t, amount, n) for n, (t, amount) in enumerate(times)]
    profile = fold(history)[order.customer_id]
    assert (profile.orders, profile.purchase_days, profile.first_day_minor) == (4, 2, 1200)
    assert profile.repeat_net_minor == 400.0
    late_first = at(9 * day + 3, 250, 9)  # an order before the first day, applied last
    profile = fold([*history, late_first])[order.customer_id]
    assert (profile.purchase_days, profile.first_day_minor) == (3, 250)
    legacy = Profile(first_purchase_at=0, last_purchase_at=day, orders=2, gross_minor=800)
    assert legacy.transactions == 2  # stored before the day count existed: orders count
    later = apply_delta(legacy, delta_for(at(5 * day, 100, 10), RATES))
    assert (later.purchase_days, later.first_day_minor) == (3, 400)


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
