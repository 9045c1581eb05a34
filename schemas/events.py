"""Input events, one model per kind: purchases, service tickets and marketing messages.

Each model is the envelope (:class:`~schemas._envelope.EventEnvelope`) plus a ``type`` (the
discriminator) and a kind-specific ``payload``. Payloads forbid unknown fields, so a misspelt
optional field is reported instead of silently dropped.

Examples
--------
>>> event = PurchaseEvent.model_validate_json(
...     '{"schema_version":1,"event_id":"e-1","customer_id":"c-42",'
...     '"event_time":"2026-01-05T10:00:00+01:00","source":"shop","type":"order_placed",'
...     '"payload":{"order_id":"o-9","amount_minor":2599,"currency":"USD"}}'
... )
>>> event.kind, event.type, event.event_time.isoformat()
('purchase', 'order_placed', '2026-01-05T09:00:00+00:00')
>>> event_to_json_bytes(event)[:40]
b'{"schema_version":1,"event_id":"e-1","cu'
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field

from schemas._envelope import EventEnvelope, EventKind
from schemas._types import CurrencyCode, Identifier, UtcDatetime

__all__ = [
    "EVENT_MODELS",
    "EVENT_TYPES",
    "Event",
    "LineItem",
    "MarketingEvent",
    "MarketingPayload",
    "MarketingType",
    "PurchaseEvent",
    "PurchasePayload",
    "PurchaseType",
    "ServiceEvent",
    "ServicePayload",
    "ServiceType",
    "event_to_json_bytes",
]

PurchaseType = Literal["order_placed", "order_returned"]
ServiceType = Literal["ticket_opened", "ticket_updated", "ticket_resolved"]
MarketingType = Literal[
    "message_sent",
    "message_delivered",
    "message_opened",
    "message_clicked",
    "message_bounced",
    "message_unsubscribed",
    "message_converted",
    "consent_withdrawn",
    "consent_given",
]


# --- purchase -----------------------------------------------------------------------------------
#: Largest amount one event may carry (10^12 minor units, e.g. $10 billion): keeps every
#: per-customer sum exact in the store's 53-bit arithmetic for millions of orders.
MAX_AMOUNT_MINOR = 10**12


class LineItem(BaseModel):
    """One order line. Prices are integers in minor units of the order's currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: Identifier
    category: str = Field(min_length=1, max_length=128)
    quantity: int = Field(ge=1, le=1_000_000)
    unit_price_minor: int = Field(
        ge=0, le=MAX_AMOUNT_MINOR, description="Price of one unit, in minor units."
    )


class PurchasePayload(BaseModel):
    """An order placed, or (for ``order_returned``) the refund of one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: Identifier
    amount_minor: int = Field(
        ge=0,
        le=MAX_AMOUNT_MINOR,
        description="Order total in minor units (cents); for returns the refunded amount, >= 0.",
    )
    currency: CurrencyCode
    items: list[LineItem] = Field(default_factory=list, max_length=500)
    channel: Literal["web", "app", "store", "phone", "marketplace", "other"] = "web"


class PurchaseEvent(EventEnvelope):
    """An order placed or returned (topic ``crm.purchase``)."""

    kind: ClassVar[EventKind] = "purchase"
    event_types: ClassVar[tuple[str, ...]] = get_args(PurchaseType)

    type: PurchaseType
    payload: PurchasePayload


# --- service ------------------------------------------------------------------------------------
class ServicePayload(BaseModel):
    """A support ticket as the helpdesk sees it after the change the event reports."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ticket_id: Identifier
    category: str = Field(default="general", min_length=1, max_length=128)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    complaint: bool = False
    satisfaction: int | None = Field(default=None, ge=1, le=5, description="CSAT, 1 (worst)..5.")
    text: str | None = Field(default=None, max_length=5000)
    opened_at: UtcDatetime | None = Field(
        default=None, description="When the ticket was opened (RFC 3339 with an offset)."
    )


class ServiceEvent(EventEnvelope):
    """A support ticket opened, updated or resolved (topic ``crm.service``)."""

    kind: ClassVar[EventKind] = "service"
    event_types: ClassVar[tuple[str, ...]] = get_args(ServiceType)

    type: ServiceType
    payload: ServicePayload


# --- marketing ----------------------------------------------------------------------------------
class MarketingPayload(BaseModel):
    """One campaign message and the channel it went through.

    For ``consent_withdrawn`` (the customer withdrew marketing consent, e.g. in a preference
    centre) and ``consent_given`` (they gave it again, e.g. opted in), ``campaign_id`` names
    where the withdrawal or the opt-in came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    campaign_id: Identifier
    message_id: Identifier | None = None
    channel: Literal["email", "sms", "push"] = "email"


class MarketingEvent(EventEnvelope):
    """A campaign message sent, delivered, opened, clicked... (topic ``crm.marketing``)."""

    kind: ClassVar[EventKind] = "marketing"
    event_types: ClassVar[tuple[str, ...]] = get_args(MarketingType)

    type: MarketingType
    payload: MarketingPayload


# --- all kinds ----------------------------------------------------------------------------------
#: Any input event.
Event: TypeAlias = PurchaseEvent | ServiceEvent | MarketingEvent

#: The event model of each kind.
EVENT_MODELS: Mapping[EventKind, type[Event]] = MappingProxyType(
    {model.kind: model for model in (PurchaseEvent, ServiceEvent, MarketingEvent)}
)

#: Every event ``type`` mapped to the kind (and so the topic) it belongs to.
EVENT_TYPES: Mapping[str, EventKind] = MappingProxyType(
    {event_type: kind for kind, model in EVENT_MODELS.items() for event_type in model.event_types}
)


def event_to_json_bytes(event: Event) -> bytes:
    """Serialise ``event`` to the wire format (compact JSON, times in UTC with ``Z``).

    The result parses back to an equal event; absent optional fields are written as ``null``.
    """
    return event.__pydantic_serializer__.to_json(event)
