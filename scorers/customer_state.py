"""What the walk remembers about a customer between checkpoints, stored with the profile."""

from __future__ import annotations

from typing import NamedTuple

import orjson

from scorers.churn_features import RecentActivity
from scorers.churn_labels import Pending
from scorers.purchase_history import PurchaseHistory

__all__ = ["CustomerState"]


class CustomerState(NamedTuple):
    """What the alert rules and the churn labels remember about a customer between checkpoints.

    ``evaluated_at`` is the last checkpoint or event walked; silences start after it.
    ``recent`` holds the decayed recent-activity counts, ``last_gap`` the seconds between the
    last two purchases, ``pending`` the churn snapshots waiting for their label and
    ``churn_alerted`` whether a churn alert is open (hysteresis), ``escalated`` whether a
    service escalation episode is open, ``value_group`` the last value x risk group and
    ``purchases`` what the anomaly scorer keeps of the customer's orders and returns.
    Fields are stored by position; a state written before a field existed reads it as its
    default.
    """

    evaluated_at: int | None = None
    segment: str | None = None
    last_purchase_at: int | None = None
    high_value: bool = False
    value_minor: float | None = None
    at_risk_episode: int | None = None
    recent: RecentActivity = RecentActivity()
    last_gap: int | None = None
    pending: Pending = ()
    last_snapshot_at: int | None = None
    churn_alerted: bool = False
    escalated: bool = False
    value_group: str | None = None
    purchases: PurchaseHistory = PurchaseHistory()

    def to_bytes(self) -> bytes:
        """Compact JSON for the profile hash (:meth:`from_bytes` reads it)."""
        values: list[object] = list(self)
        values[6] = self.recent.to_list()
        values[13] = self.purchases.to_list()
        return orjson.dumps(values)

    @classmethod
    def from_bytes(cls, raw: bytes | str | None) -> CustomerState:
        """Read :meth:`to_bytes` output; a missing or unreadable value is a fresh state."""
        if not raw:
            return cls()
        try:
            values = orjson.loads(raw)[: len(_DEFAULTS)]
            values += _DEFAULTS[len(values) :]
            values[6] = RecentActivity.from_list(values[6])
            values[8] = tuple((int(at), None if f is None else tuple(f)) for at, f in values[8])
            values[10], values[11] = bool(values[10]), bool(values[11])
            values[13] = PurchaseHistory.from_list(values[13])
            return cls._make(values)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            return cls()


_DEFAULTS: list[object] = list(CustomerState())
assert CustomerState._fields[6] == "recent" and CustomerState._fields[13] == "purchases"
