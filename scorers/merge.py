"""Merging two customers' profiles into one, as if one customer had done both histories.

Two ids found to be one person (a guest checkout and the account made later) become one
profile: :func:`merge_profiles` gives what folding both customers' events into one history
gives (:func:`scorers.profile.apply_delta`, checked against the batch recomputation in
``tests/oracle.py``). Counters add, last times take the newest, first times the oldest. The
transactions (``purchase_days``: UTC days with an order) are exact unless both customers
ordered on a day that is not the first or last purchase day of each (a profile keeps the
count and the first and last days, not the set of days): such a day is counted twice, the
same bound a late order has (:mod:`scorers.profile`). ``first_day_minor``
is exact: the earlier first day's amount, or both when the two first days are one day.

>>> from scorers.profile import Profile
>>> day = 86_400
>>> a = Profile(first_purchase_at=1 * day, last_purchase_at=5 * day, orders=2, gross_minor=300,
...             purchase_days=2, first_day_minor=100, last_purchase_event_at=5 * day)
>>> b = Profile(first_purchase_at=5 * day + 60, last_purchase_at=9 * day, orders=2,
...             gross_minor=50, purchase_days=2, first_day_minor=20,
...             last_purchase_event_at=9 * day)
>>> m = merge_profiles(a, b)
>>> (m.orders, m.gross_minor, m.purchase_days, m.first_day_minor, m.last_purchase_at // day)
(4, 350, 3, 100, 9)
"""

from __future__ import annotations

from scorers.profile import FIELD_OPS, Profile

__all__ = ["merge_profiles", "shared_purchase_days"]

_DAY = 86_400


def merge_profiles(a: Profile, b: Profile) -> Profile:
    """One profile holding both ``a``'s and ``b``'s events (symmetric; see the module doc)."""
    merged: dict[str, int | None] = {}
    for name, op in FIELD_OPS.items():
        x, y = getattr(a, name), getattr(b, name)
        if op == "add":
            merged[name] = x + y
        elif op in ("max", "min"):
            pick = max if op == "max" else min
            merged[name] = x if y is None else y if x is None else pick(x, y)
    days_a, first_a = _days(a)
    days_b, first_b = _days(b)
    if a.first_purchase_at is None or b.first_purchase_at is None:
        merged["purchase_days"] = days_a + days_b
        merged["first_day_minor"] = first_a + first_b
    else:
        merged["purchase_days"] = days_a + days_b - shared_purchase_days(a, b)
        day_a, day_b = a.first_purchase_at // _DAY, b.first_purchase_at // _DAY
        merged["first_day_minor"] = (
            first_a if day_a < day_b else first_b if day_b < day_a else first_a + first_b
        )
    return Profile._make(merged[name] for name in Profile._fields)


def shared_purchase_days(a: Profile, b: Profile) -> int:
    """UTC days known to hold an order of both customers: those that are the first or last
    purchase day of each (a profile does not say which other days it had)."""
    return len(_ends(a) & _ends(b))


def _ends(p: Profile) -> set[int]:
    assert p.first_purchase_at is not None and p.last_purchase_at is not None
    return {p.first_purchase_at // _DAY, p.last_purchase_at // _DAY}


def _days(p: Profile) -> tuple[int, int]:
    """Transactions and the first day's amount, for a profile stored before they existed too
    (each order one transaction, as :func:`scorers.profile._order_changes` reads it)."""
    if p.purchase_days == 0 and p.orders > 0:
        return p.orders, p.gross_minor // max(1, p.orders)
    return p.purchase_days, p.first_day_minor
