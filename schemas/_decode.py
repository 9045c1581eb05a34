"""The fast path of :class:`schemas.parse.EventParser`: plain events decoded by msgspec.

Validating an event with pydantic and then checking it for duplicate keys costs ~12 µs; most
input is the plain shape producers write. :func:`decode_plain` decodes such a message with
msgspec into structs carrying the same constraints as the models in :mod:`schemas.events`
(~2 µs, in C) and builds the pydantic models from them without validating again. It is a
*subset* acceptor: whatever it returns, pydantic would have accepted and built equal (same
field values, same ``model_fields_set``); anything it is not sure of returns None and pydantic
decides, so every rejection and its dead-letter reason still comes from pydantic:

- a backslash anywhere (an escape in a string);
- an unknown key at any level (the envelope ignores them, payloads reject them);
- anything msgspec refuses: a wrong type, a broken constraint, invalid JSON;
- a timestamp not written as ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)``, or out of range;
- an unknown currency, a type of another kind, a schema version other than 1.

Duplicate keys: in JSON a colon follows each key or lies inside a string. A message has K keys
and S colons inside its strings (with no backslash, none is escaped); decoding keeps P <= K
fields (a repeated key collapses) whose timestamps hold s <= S colons. The fast path accepts
only when ``raw.count(b":") == P + s``, i.e. K + S == P + s, which forces K == P (no key twice)
and S == s (no other string holds a colon: such messages take the exact path).
``tests/unit/schemas/test_decode_fast_path.py`` compares the two paths on generated valid and
invalid events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from pydantic import BaseModel

from schemas._envelope import Contact
from schemas._types import EARLIEST, LATEST
from schemas.currencies import ISO_4217_CODES
from schemas.events import (
    MAX_AMOUNT_MINOR,
    Event,
    LineItem,
    MarketingEvent,
    MarketingPayload,
    PurchaseEvent,
    PurchasePayload,
    ServiceEvent,
    ServicePayload,
)

__all__ = ["decode_plain"]

_M = TypeVar("_M", bound=BaseModel)
_E = TypeVar("_E", PurchaseEvent, ServiceEvent, MarketingEvent)

_Id = Annotated[str, Meta(min_length=1, max_length=128)]
_CustomerId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
_Category = Annotated[str, Meta(min_length=1, max_length=128)]
_Amount = Annotated[int, Meta(ge=0, le=MAX_AMOUNT_MINOR)]
# RFC 3339 as producers write it; other separators, leap seconds or longer fractions go to
# pydantic (its parser and the standard library's need not agree on those).
_TIMESTAMP: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-7]):[0-5][0-9])"
)


class _Contact(Struct, forbid_unknown_fields=True):
    name: str | UnsetType | None = UNSET
    email: str | UnsetType | None = UNSET
    phone: str | UnsetType | None = UNSET
    address: str | UnsetType | None = UNSET


class _LineItem(Struct, forbid_unknown_fields=True):
    sku: _Id
    category: _Category
    quantity: Annotated[int, Meta(ge=1, le=1_000_000)]
    unit_price_minor: _Amount


class _Purchase(Struct, forbid_unknown_fields=True):
    order_id: _Id
    amount_minor: _Amount
    currency: str
    items: Annotated[list[_LineItem], Meta(max_length=500)] | UnsetType = UNSET
    channel: Literal["web", "app", "store", "phone", "marketplace", "other"] | UnsetType = UNSET


class _Service(Struct, forbid_unknown_fields=True):
    ticket_id: _Id
    category: _Category | UnsetType = UNSET
    priority: Literal["low", "normal", "high", "urgent"] | UnsetType = UNSET
    complaint: bool | UnsetType = UNSET
    satisfaction: Annotated[int, Meta(ge=1, le=5)] | UnsetType | None = UNSET
    text: Annotated[str, Meta(max_length=5000)] | UnsetType | None = UNSET
    opened_at: str | UnsetType | None = UNSET


class _Marketing(Struct, forbid_unknown_fields=True):
    campaign_id: _Id
    message_id: _Id | UnsetType | None = UNSET
    channel: Literal["email", "sms", "push"] | UnsetType = UNSET


class _Envelope(Struct, forbid_unknown_fields=True):
    schema_version: int
    event_id: _Id
    customer_id: _CustomerId
    event_time: str
    source: Annotated[str, Meta(min_length=1, max_length=64)]
    type: str
    department: str | UnsetType | None = UNSET
    owner: str | UnsetType | None = UNSET
    contact: _Contact | UnsetType | None = UNSET


class _PurchaseEnvelope(_Envelope, forbid_unknown_fields=True, kw_only=True):
    payload: _Purchase


class _ServiceEnvelope(_Envelope, forbid_unknown_fields=True, kw_only=True):
    payload: _Service


class _MarketingEnvelope(_Envelope, forbid_unknown_fields=True, kw_only=True):
    payload: _Marketing


class _Unsure(Exception):
    """Not a plain event: pydantic decides."""


_new = object.__new__
_set = object.__setattr__
_builtins = msgspec.to_builtins  # in C; leaves out UNSET fields, so the keys are those given


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Every field of ``model`` in declaration order, with its default (None if required)."""
    return {
        name: None if info.is_required() else info.get_default(call_default_factory=True)
        for name, info in model.model_fields.items()
    }


def _build(model: type[_M], defaults: dict[str, Any], given: dict[str, Any]) -> _M:
    """``model`` as validation builds it from the (already checked) fields ``given``."""
    built = _new(model)
    values = built.__dict__
    values.update(defaults)
    values.update(given)
    _set(built, "__pydantic_fields_set__", set(given))
    _set(built, "__pydantic_extra__", None)
    _set(built, "__pydantic_private__", None)
    return built


def _instant(value: str) -> datetime:
    if _TIMESTAMP.fullmatch(value) is None:
        raise _Unsure
    utc = datetime.fromisoformat(value).astimezone(UTC)  # ValueError: not a real date
    if not EARLIEST <= utc < LATEST:
        raise _Unsure
    return utc


_CONTACT: Final = _defaults(Contact)
_LINE_ITEM: Final = _defaults(LineItem)
_ENVELOPES: Final[dict[type[BaseModel], dict[str, Any]]] = {
    model: _defaults(model) for model in (PurchaseEvent, ServiceEvent, MarketingEvent)
}
_PAYLOADS: Final = {
    model: _defaults(model) for model in (PurchasePayload, ServicePayload, MarketingPayload)
}
_LINE_KEYS: Final = len(_LINE_ITEM)


def _event(model: type[_E], fields: dict[str, Any], payload: BaseModel) -> tuple[_E, int]:
    """The event of ``kind`` from its decoded envelope ``fields``, and the colons its envelope
    must have: one per key (the contact's included) and those inside ``event_time``."""
    if fields["schema_version"] != 1 or fields["type"] not in model.event_types:
        raise _Unsure
    event_time = fields["event_time"]
    fields["event_time"] = _instant(event_time)
    colons = len(fields) + event_time.count(":")
    contact = fields.get("contact")
    if contact is not None:
        colons += len(contact)
        fields["contact"] = _build(Contact, _CONTACT, contact)
    fields["payload"] = payload
    return _build(model, _ENVELOPES[model], fields), colons


def _purchase(struct: _PurchaseEnvelope) -> tuple[Event, int]:
    fields = _builtins(struct)
    payload = fields["payload"]
    if payload["currency"] not in ISO_4217_CODES:
        raise _Unsure
    items = payload.get("items")
    colons = len(payload)
    if items is not None:
        colons += _LINE_KEYS * len(items)
        payload["items"] = [_build(LineItem, _LINE_ITEM, item) for item in items]
    built = _build(PurchasePayload, _PAYLOADS[PurchasePayload], payload)
    if items is None:
        built.__dict__["items"] = []  # a list of its own, as the default factory gives
    event, envelope = _event(PurchaseEvent, fields, built)
    return event, colons + envelope


def _service(struct: _ServiceEnvelope) -> tuple[Event, int]:
    fields = _builtins(struct)
    payload = fields["payload"]
    opened_at = payload.get("opened_at")
    colons = 0
    if opened_at is not None:
        payload["opened_at"] = _instant(opened_at)
        colons = opened_at.count(":")
    built = _build(ServicePayload, _PAYLOADS[ServicePayload], payload)
    event, envelope = _event(ServiceEvent, fields, built)
    return event, envelope + len(payload) + colons


def _marketing(struct: _MarketingEnvelope) -> tuple[Event, int]:
    fields = _builtins(struct)
    payload = fields["payload"]
    built = _build(MarketingPayload, _PAYLOADS[MarketingPayload], payload)
    event, envelope = _event(MarketingEvent, fields, built)
    return event, envelope + len(payload)


_Builder = Callable[[Any], tuple[Event, int]]
_KINDS: Final[Mapping[str, tuple[msgspec.json.Decoder[Any], _Builder]]] = {
    PurchaseEvent.kind: (msgspec.json.Decoder(_PurchaseEnvelope), _purchase),
    ServiceEvent.kind: (msgspec.json.Decoder(_ServiceEnvelope), _service),
    MarketingEvent.kind: (msgspec.json.Decoder(_MarketingEnvelope), _marketing),
}


def decode_plain(raw: bytes, kind: str) -> Event | None:
    """The event pydantic would validate from ``raw`` on the ``kind`` topic, or None when
    ``raw`` is not a plain, valid event of that kind (then pydantic must decide)."""
    if b"\\" in raw:
        return None
    decoder, build = _KINDS[kind]
    try:
        event, colons = build(decoder.decode(raw))
    except (_Unsure, msgspec.ValidationError, msgspec.DecodeError, ValueError, OverflowError):
        return None
    return event if raw.count(b":") == colons else None
