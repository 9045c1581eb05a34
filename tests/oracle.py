"""Batch recomputation of customer profiles from scratch: the oracle tests compare state with.

Written independently of ``scorers.deltas``: it groups the unique events of each customer and
aggregates them with plain sums, counts, mins and maxes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from schemas import Event, MarketingEvent, PurchaseEvent, ServiceEvent
from scorers.profile import Profile

_ENGAGED = {"message_opened", "message_clicked", "message_converted"}
_UNSUBSCRIBES = {"message_unsubscribed", "consent_withdrawn"}
_COUNTER = {
    "message_sent": "messages_sent",
    "message_delivered": "messages_delivered",
    "message_opened": "messages_opened",
    "message_clicked": "messages_clicked",
    "message_bounced": "messages_bounced",
    "message_unsubscribed": "unsubscribes",
    "message_converted": "conversions",
    "consent_withdrawn": "unsubscribes",
}


def _ts(event: Event) -> int:
    return int(event.event_time.timestamp())


def _max(values: Iterable[int]) -> int | None:
    values = list(values)
    return max(values) if values else None


def recompute_profiles(
    events: Iterable[Event], fx_rates: Mapping[str, float] | None = None
) -> dict[str, Profile]:
    """Profiles of every customer from the unique events (first occurrence of each event_id)."""
    rates = fx_rates or {"USD": 1.0}
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    by_customer: dict[str, list[Event]] = defaultdict(list)
    for event in unique.values():
        by_customer[event.customer_id].append(event)
    return {cid: _profile(evts, rates) for cid, evts in by_customer.items()}


def _profile(events: list[Event], rates: Mapping[str, float]) -> Profile:
    purchases = [e for e in events if isinstance(e, PurchaseEvent)]
    orders = [e for e in purchases if e.type == "order_placed"]
    returns = [e for e in purchases if e.type == "order_returned"]
    service = [e for e in events if isinstance(e, ServiceEvent)]
    opened = [e for e in service if e.type == "ticket_opened"]
    resolved = [e for e in service if e.type == "ticket_resolved"]
    timed = [e for e in resolved if e.payload.opened_at is not None]
    rated = [e for e in service if e.payload.satisfaction is not None]
    marketing = [e for e in events if isinstance(e, MarketingEvent)]
    counts = dict.fromkeys(_COUNTER.values(), 0)
    for e in marketing:
        if e.type in _COUNTER:  # consent_given counts nothing
            counts[_COUNTER[e.type]] += 1

    def amount(e: PurchaseEvent) -> int:
        return round(e.payload.amount_minor * rates[e.payload.currency])

    days = sorted({_ts(e) // 86_400 for e in orders})
    return Profile(
        purchase_days=len(days),
        first_day_minor=sum(amount(e) for e in orders if _ts(e) // 86_400 == days[0])
        if days
        else 0,
        first_purchase_at=min((_ts(e) for e in orders), default=None),
        last_purchase_at=_max(_ts(e) for e in orders),
        orders=len(orders),
        returns=len(returns),
        gross_minor=sum(amount(e) for e in orders),
        returned_minor=sum(amount(e) for e in returns),
        tickets_opened=len(opened),
        tickets_resolved=len(resolved),
        complaints=sum(1 for e in opened if e.payload.complaint),
        satisfaction_sum=sum(e.payload.satisfaction or 0 for e in rated),
        satisfaction_count=len(rated),
        resolution_seconds_sum=sum(
            max(0, _ts(e) - int(e.payload.opened_at.timestamp()))
            for e in timed
            if e.payload.opened_at is not None
        ),
        resolution_count=len(timed),
        last_ticket_at=_max(_ts(e) for e in service),
        last_engagement_at=_max(_ts(e) for e in marketing if e.type in _ENGAGED),
        last_unsubscribe_at=_max(_ts(e) for e in marketing if e.type in _UNSUBSCRIBES),
        last_consent_at=_max(_ts(e) for e in marketing if e.type == "consent_given"),
        last_purchase_event_at=_max(_ts(e) for e in purchases),
        last_service_event_at=_max(_ts(e) for e in service),
        last_marketing_event_at=_max(_ts(e) for e in marketing),
        **counts,
    )
