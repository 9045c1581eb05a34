"""A customer's aggregate profile and how one event changes it.

An event becomes a :class:`ProfileDelta`: a few operations (add, max, min, and an order's
transaction-day bookkeeping) on integer fields. The Redis store applies the same deltas
atomically server-side; :func:`apply_delta` is the pure fold used to check it.

Policy: ``monetary_minor`` is net of returns (gross order amounts minus refunded amounts, in the
base currency's minor units) and may be negative when refunds exceed orders; scorers clamp it.
Times are whole epoch seconds (UTC).

Transactions, as the customer-base models define them: all orders of one UTC day are one
transaction. ``purchase_days`` counts them and ``first_day_minor`` is the gross amount of the
first one (so the repeat transactions' spend is ``gross_minor - first_day_minor``). An order
changes both through its delta's ``order`` part, which looks at the profile's first and last
purchase days *before* the order: a new transaction when its day is neither, and the first
day's amount restarts when the order is on an earlier day than the first. That is exact when a
customer's orders are applied in event-time order, which the event clock guarantees for all
but *late* events (older than the watermark); a late order on a day strictly between the first
and the last purchase day that already had an order is counted as one more transaction. Unlike
the other fields, these two therefore depend on the order orders are applied in (two integers
per customer instead of a set of days). Every other operation commutes, so the profile after a
set of events does not depend on the order they arrived in; replay gives what live gave.

Examples
--------
>>> d = ProfileDelta(adds={"orders": 1}, maxes={"last_purchase_at": 100}, mins={})
>>> apply_delta(Profile(), d).orders
1
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, NamedTuple

__all__ = [
    "FIELD_CODES",
    "FIELD_DEFAULTS",
    "FIELD_OPS",
    "FIELD_ORDER",
    "Profile",
    "ProfileDelta",
    "apply_delta",
]

Op = Literal["add", "max", "min", "order"]
_DAY = 86_400
_EMPTY: Mapping[str, int] = MappingProxyType({})

#: Every profile field, its short code in the Redis hash (short names keep the hash small), and
#: the one operation that updates it.
_FIELD_SPEC: dict[str, tuple[str, Op]] = {
    "first_purchase_at": ("fp", "min"),
    "last_purchase_at": ("lp", "max"),
    "orders": ("n", "add"),
    "returns": ("rn", "add"),
    "gross_minor": ("g", "add"),
    "returned_minor": ("rm", "add"),
    "tickets_opened": ("to", "add"),
    "tickets_resolved": ("tr", "add"),
    "complaints": ("cp", "add"),
    "satisfaction_sum": ("ss", "add"),
    "satisfaction_count": ("sn", "add"),
    "resolution_seconds_sum": ("rs", "add"),
    "resolution_count": ("rc", "add"),
    "last_ticket_at": ("lt", "max"),
    "messages_sent": ("ms", "add"),
    "messages_delivered": ("md", "add"),
    "messages_opened": ("mo", "add"),
    "messages_clicked": ("mc", "add"),
    "messages_bounced": ("mb", "add"),
    "unsubscribes": ("mu", "add"),
    "conversions": ("mv", "add"),
    "last_engagement_at": ("le", "max"),
    "last_unsubscribe_at": ("lu", "max"),
    "last_purchase_event_at": ("xp", "max"),
    "last_service_event_at": ("xs", "max"),
    "last_marketing_event_at": ("xm", "max"),
    "purchase_days": ("pd", "order"),
    "first_day_minor": ("fa", "order"),
    "last_consent_at": ("lc", "max"),
}
FIELD_CODES: dict[str, str] = {name: code for name, (code, _) in _FIELD_SPEC.items()}
FIELD_OPS: dict[str, Op] = {name: op for name, (_, op) in _FIELD_SPEC.items()}
_NAMES_BY_CODE: dict[str, str] = {code: name for name, code in FIELD_CODES.items()}


class Profile(NamedTuple):
    """Aggregates of everything one customer did; ``None`` times mean "never".

    A NamedTuple: immutable, and built in C (one is made for every applied event).
    """

    first_purchase_at: int | None = None
    last_purchase_at: int | None = None
    orders: int = 0
    returns: int = 0
    gross_minor: int = 0
    returned_minor: int = 0
    tickets_opened: int = 0
    tickets_resolved: int = 0
    complaints: int = 0
    satisfaction_sum: int = 0
    satisfaction_count: int = 0
    resolution_seconds_sum: int = 0
    resolution_count: int = 0
    last_ticket_at: int | None = None
    messages_sent: int = 0
    messages_delivered: int = 0
    messages_opened: int = 0
    messages_clicked: int = 0
    messages_bounced: int = 0
    unsubscribes: int = 0
    conversions: int = 0
    last_engagement_at: int | None = None
    last_unsubscribe_at: int | None = None
    last_purchase_event_at: int | None = None
    last_service_event_at: int | None = None
    last_marketing_event_at: int | None = None
    purchase_days: int = 0
    first_day_minor: int = 0
    last_consent_at: int | None = None

    @property
    def transactions(self) -> int:
        """Transactions as the customer-base models count them: UTC days with an order.

        A profile stored before ``purchase_days`` existed counts each order as one.
        """
        return self.purchase_days if self.purchase_days > 0 else self.orders

    @property
    def repeat_net_minor(self) -> float:
        """Net spend of the repeat transactions (all but the first day's orders), >= 0.

        Returns do not say which order they refund, so they are netted pro rata: every
        transaction keeps the same share ``net / gross`` of its gross amount.

        >>> Profile(orders=3, purchase_days=2, gross_minor=9000, first_day_minor=3000,
        ...         returned_minor=900).repeat_net_minor
        5400.0
        """
        if self.gross_minor <= 0 or self.transactions <= 1:
            return 0.0
        first = self.first_day_minor if self.purchase_days > 0 else self.gross_minor / self.orders
        kept = max(0, self.monetary_minor) / self.gross_minor
        return max(0.0, (self.gross_minor - first) * kept)

    @property
    def monetary_minor(self) -> int:
        """Net spend: order amounts minus refunds (minor units of the base currency)."""
        return self.gross_minor - self.returned_minor

    @property
    def open_tickets(self) -> int:
        """Tickets opened and not yet resolved (never below zero)."""
        return max(0, self.tickets_opened - self.tickets_resolved)

    @property
    def mean_satisfaction(self) -> float | None:
        """Mean 1–5 rating, or None without ratings."""
        return self.satisfaction_sum / self.satisfaction_count if self.satisfaction_count else None

    @property
    def mean_resolution_seconds(self) -> float | None:
        """Mean time from opening to resolving a ticket, or None."""
        if not self.resolution_count:
            return None
        return self.resolution_seconds_sum / self.resolution_count

    @property
    def last_event_at(self) -> int | None:
        """Time of the newest event of any kind."""
        times = [
            t
            for t in (
                self.last_purchase_event_at,
                self.last_service_event_at,
                self.last_marketing_event_at,
            )
            if t is not None
        ]
        return max(times) if times else None

    @classmethod
    def from_values(cls, values: list[bytes | int | None]) -> Profile:
        """Build from values in :data:`FIELD_ORDER` (None = absent), as the store returns them."""
        return cls._make(
            [d if v is None else int(v) for v, d in zip(values, FIELD_DEFAULTS, strict=True)]
        )

    @classmethod
    def from_redis(cls, raw: Mapping[bytes | str, bytes | str]) -> Profile:
        """Build from the Redis hash (short codes); unknown fields such as offsets are ignored."""
        values: dict[str, int] = {}
        for key, value in raw.items():
            code = key.decode() if isinstance(key, bytes) else key
            name = _NAMES_BY_CODE.get(code)
            if name is not None:
                values[name] = int(value)
        return cls(**values)

    def to_dict(self) -> dict[str, int | None]:
        """Plain field dict (for JSON and comparisons)."""
        return dict(self._asdict())


class ProfileDelta(NamedTuple):
    """The change one event makes: field name -> amount / candidate value, and for an order
    its ``(time, gross amount)``, which updates ``purchase_days`` and ``first_day_minor``
    against the profile before the event.

    Treat the dicts as read-only: deltas are shared and re-used.
    """

    adds: Mapping[str, int] = _EMPTY
    maxes: Mapping[str, int] = _EMPTY
    mins: Mapping[str, int] = _EMPTY
    order: tuple[int, int] | None = None

    def redis_args(self) -> list[str | int]:
        """Flattened ``op, code, value`` triples for the store's server-side script; an order
        goes first as ``order, time, amount`` (it reads the purchase times before the event)."""
        args: list[str | int] = [] if self.order is None else ["order", *self.order]
        for op, items in (("add", self.adds), ("max", self.maxes), ("min", self.mins)):
            for name, value in items.items():
                args.extend((op, FIELD_CODES[name], value))
        return args


#: Profile fields in tuple order, and their defaults (what an absent hash field means).
FIELD_ORDER: tuple[str, ...] = Profile._fields
FIELD_DEFAULTS: tuple[int | None, ...] = tuple(
    Profile._field_defaults[name] for name in FIELD_ORDER
)
assert set(FIELD_ORDER) == set(FIELD_CODES), "every Profile field needs a code in _FIELD_SPEC"


def apply_delta(profile: Profile, delta: ProfileDelta) -> Profile:
    """The profile after ``delta`` (pure; the reference for what the Redis script does)."""
    changes: dict[str, int] = {} if delta.order is None else _order_changes(profile, *delta.order)
    for name, amount in delta.adds.items():
        changes[name] = getattr(profile, name) + amount
    for name, value in delta.maxes.items():
        current = getattr(profile, name)
        changes[name] = value if current is None else max(current, value)
    for name, value in delta.mins.items():
        current = getattr(profile, name)
        changes[name] = value if current is None else min(current, value)
    return profile._replace(**changes)


def _order_changes(profile: Profile, at: int, amount: int) -> dict[str, int]:
    """``purchase_days`` and ``first_day_minor`` after an order at ``at`` (streams/apply_event.lua
    does the same)."""
    first, last = profile.first_purchase_at, profile.last_purchase_at
    if first is None or last is None:
        return {"purchase_days": 1, "first_day_minor": amount}
    days, first_amount = profile.purchase_days, profile.first_day_minor
    if days == 0:  # stored before these fields existed: each earlier order was a transaction
        days, first_amount = profile.orders, profile.gross_minor // max(1, profile.orders)
    day, first_day, last_day = at // _DAY, first // _DAY, last // _DAY
    if day < first_day:
        first_amount = amount
    elif day == first_day:
        first_amount += amount
    if day not in (first_day, last_day):
        days += 1
    return {"purchase_days": days, "first_day_minor": first_amount}
