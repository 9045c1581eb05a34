"""Recency, frequency and monetary value of a profile, as of a given event time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scorers.profile import Profile

__all__ = ["Rfm", "rfm"]

_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Rfm:
    """R, F and M of one customer.

    ``recency_days`` is None for a customer who never ordered; ``monetary_minor`` is net of
    returns and never negative here (refunds beyond orders count as zero value).
    """

    recency_days: float | None
    frequency: int
    monetary_minor: int


def rfm(profile: Profile, as_of: datetime) -> Rfm:
    """RFM of ``profile`` at event time ``as_of`` (timezone-aware).

    A purchase later than ``as_of`` (a late-arriving view of the past) gives recency 0.

    >>> from datetime import UTC, datetime
    >>> p = Profile(orders=3, gross_minor=9000, returned_minor=1000, last_purchase_at=0)
    >>> rfm(p, datetime(1970, 1, 11, tzinfo=UTC))
    Rfm(recency_days=10.0, frequency=3, monetary_minor=8000)
    """
    recency = None
    if profile.last_purchase_at is not None:
        recency = max(0.0, (as_of.timestamp() - profile.last_purchase_at) / _DAY)
    return Rfm(recency, profile.orders, max(0, profile.monetary_minor))
