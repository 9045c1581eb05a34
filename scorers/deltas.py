"""What each kind of event does to a customer's profile, as a commutative :class:`ProfileDelta`.

Policies: a complaint counts once, when its ticket is opened with ``complaint`` set; a rating
counts on whichever ticket event carries it; resolution time needs ``opened_at`` on the resolved
event. Amounts in another currency are converted to the base currency with ``fx_rates``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from crm_core.errors import EventRejected
from schemas import Event, MarketingEvent, PurchaseEvent, ServiceEvent
from scorers.profile import ProfileDelta

__all__ = ["base_amount_minor", "delta_for", "epoch_seconds"]

_MARKETING_COUNTERS: dict[str, str | None] = {
    "message_sent": "messages_sent",
    "message_delivered": "messages_delivered",
    "message_opened": "messages_opened",
    "message_clicked": "messages_clicked",
    "message_bounced": "messages_bounced",
    "message_unsubscribed": "unsubscribes",
    "message_converted": "conversions",
    "consent_withdrawn": "unsubscribes",  # from all marketing at once (scorers/consent.py)
    "consent_given": None,  # counts nothing; raises last_consent_at
}
_ENGAGEMENTS = frozenset({"message_opened", "message_clicked", "message_converted"})


def _marketing_delta_parts(event_type: str) -> tuple[Mapping[str, int], tuple[str, ...]]:
    maxes = ["last_marketing_event_at"]
    if event_type in _ENGAGEMENTS:
        maxes.append("last_engagement_at")
    if event_type in ("message_unsubscribed", "consent_withdrawn"):
        maxes.append("last_unsubscribe_at")
    if event_type == "consent_given":
        maxes.append("last_consent_at")
    counter = _MARKETING_COUNTERS[event_type]
    return MappingProxyType({} if counter is None else {counter: 1}), tuple(maxes)


#: Per marketing type: the (shared, read-only) counter increments and the time fields it raises.
_MARKETING_DELTAS = {t: _marketing_delta_parts(t) for t in _MARKETING_COUNTERS}


def epoch_seconds(moment: datetime) -> int:
    """Whole seconds since the Unix epoch of a timezone-aware datetime."""
    return int(moment.timestamp())


def delta_for(event: Event, fx_rates: Mapping[str, float]) -> ProfileDelta:
    """The change ``event`` makes to its customer's profile.

    Raises EventRejected(``unsupported_currency``) for an amount in a currency without a rate.

    >>> from schemas import example_event
    >>> delta_for(example_event("order_placed"), {"USD": 1.0}).adds["orders"]
    1
    """
    at = epoch_seconds(event.event_time)
    if isinstance(event, PurchaseEvent):
        return _purchase(event, at, fx_rates)
    if isinstance(event, ServiceEvent):
        return _service(event, at)
    return _marketing(event, at)


def base_amount_minor(event: PurchaseEvent, fx_rates: Mapping[str, float]) -> int:
    """The event's amount in minor units of the base currency (what the profile counts).

    Raises EventRejected(``unsupported_currency``) for a currency without a rate.
    """
    payload = event.payload
    rate = fx_rates.get(payload.currency)
    if rate is None:
        raise EventRejected(
            "unsupported_currency",
            f"no exchange rate for {payload.currency}; add it to CRM_FX_RATES",
        )
    return round(payload.amount_minor * rate)


def _purchase(event: PurchaseEvent, at: int, fx_rates: Mapping[str, float]) -> ProfileDelta:
    amount = base_amount_minor(event, fx_rates)
    if event.type == "order_placed":
        return ProfileDelta(
            adds={"orders": 1, "gross_minor": amount},
            maxes={"last_purchase_at": at, "last_purchase_event_at": at},
            mins={"first_purchase_at": at},
            order=(at, amount),
        )
    return ProfileDelta(
        adds={"returns": 1, "returned_minor": amount}, maxes={"last_purchase_event_at": at}
    )


def _service(event: ServiceEvent, at: int) -> ProfileDelta:
    payload = event.payload
    adds: dict[str, int] = {}
    if event.type == "ticket_opened":
        adds["tickets_opened"] = 1
        if payload.complaint:
            adds["complaints"] = 1
    elif event.type == "ticket_resolved":
        adds["tickets_resolved"] = 1
        if payload.opened_at is not None:
            adds["resolution_seconds_sum"] = max(0, at - epoch_seconds(payload.opened_at))
            adds["resolution_count"] = 1
    if payload.satisfaction is not None:
        adds["satisfaction_sum"] = payload.satisfaction
        adds["satisfaction_count"] = 1
    return ProfileDelta(adds=adds, maxes={"last_ticket_at": at, "last_service_event_at": at})


def _marketing(event: MarketingEvent, at: int) -> ProfileDelta:
    adds, max_fields = _MARKETING_DELTAS[event.type]
    return ProfileDelta(adds=adds, maxes=dict.fromkeys(max_fields, at))
