"""Retention (GDPR art. 5(1)(e)): when a silent customer's data is removed, in event time.

With ``CRM_RETENTION_DAYS`` set, a customer *expires* once that long has passed, in event time,
since its newest event of any kind (:attr:`~scorers.profile.Profile.last_event_at`). The
decision depends only on event times, never the wall clock, so a replay removes the same
customers at the same moments as running live:

- a customer still silent when its partition's watermark reaches :func:`expires_at` is removed
  there (its timer is due then: :func:`due_with_retention`);
- an event at or after :func:`expires_at` that arrives before that timer fired (same round, or
  the timer is still in flight) finds the old data *expired*: the event starts a new customer,
  exactly as if the timer had fired first (:func:`starts_afresh`; the apply script resets the
  stored profile by the same rule).

>>> from scorers.profile import Profile
>>> day = 86_400
>>> seconds = retention_seconds(3.0)
>>> expires_at(Profile(last_purchase_event_at=10 * day), seconds) == 13 * day
True
>>> starts_afresh(Profile(last_purchase_event_at=10 * day), 13 * day, seconds)
True
>>> starts_afresh(Profile(last_purchase_event_at=10 * day), 13 * day - 1, seconds)
False
>>> due_with_retention(None, Profile(last_service_event_at=day), seconds) == 4 * day
True
>>> expires_at(Profile(last_purchase_event_at=day), None) is None  # retention off
True
"""

from __future__ import annotations

from scorers.profile import Profile

__all__ = ["due_with_retention", "expires_at", "retention_seconds", "starts_afresh"]

_DAY = 86_400


def retention_seconds(days: float | None) -> int | None:
    """``CRM_RETENTION_DAYS`` in whole seconds (None: retention is off)."""
    return None if days is None else max(1, round(days * _DAY))


def expires_at(profile: Profile | None, retention: int | None) -> int | None:
    """The event time (epoch seconds) at which the customer's data expires if no event comes
    first; None when retention is off or the customer has no event."""
    if retention is None or profile is None:
        return None
    last = profile.last_event_at
    return None if last is None else last + retention


def starts_afresh(profile: Profile | None, at: int, retention: int | None) -> bool:
    """Whether an event at ``at`` finds ``profile`` expired (it then starts a new customer)."""
    end = expires_at(profile, retention)
    return end is not None and at >= end


def due_with_retention(due: int | None, profile: Profile, retention: int | None) -> int | None:
    """The customer's next due time: the scores' own (``due``) or its expiry, whichever is
    first."""
    end = expires_at(profile, retention)
    if end is None:
        return due
    return end if due is None else min(due, end)
