"""Valid example events, one per event type: as models, JSON-ready dicts or wire bytes.

For documentation, tests and load generators: start from a valid event and change one thing.

Examples
--------
>>> example_event("ticket_resolved").payload.satisfaction
2
>>> from datetime import UTC, datetime
>>> from schemas.parse import EventParser
>>> raw = example_json("message_clicked")
>>> EventParser().parse(raw, "marketing", datetime(2026, 1, 6, tzinfo=UTC)).type
'message_clicked'
>>> raw = example_json("order_placed", {"payload.items.0.quantity": 0, "owner": REMOVE})
>>> b'"quantity":0' in raw, b'"owner"' in raw
(True, False)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

import orjson

from schemas.events import EVENT_MODELS, EVENT_TYPES, Event

__all__ = ["EXAMPLE_EVENT_TIME", "REMOVE", "example_event", "example_event_dict", "example_json"]

#: The ``event_time`` of every example (09:00 UTC on 2026-01-05).
EXAMPLE_EVENT_TIME = "2026-01-05T10:00:00+01:00"

_PAYLOADS: dict[str, dict[str, Any]] = {
    "purchase": {
        "order_id": "o-9",
        "amount_minor": 2599,
        "currency": "USD",
        "items": [{"sku": "ink-1", "category": "ink", "quantity": 1, "unit_price_minor": 2599}],
        "channel": "web",
    },
    "service": {
        "ticket_id": "t-7",
        "category": "billing",
        "priority": "high",
        "complaint": True,
        "text": "I was charged twice.",
    },
    "marketing": {"campaign_id": "spring-26", "message_id": "m-3", "channel": "email"},
}
#: A value for :func:`example_json` changes that deletes the field instead of setting it.
REMOVE: Final[object] = object()

_SOURCES = {"purchase": "shop", "service": "helpdesk", "marketing": "esp"}


def example_event(event_type: str) -> Event:
    """A valid event of ``event_type`` (customer ``c-42``, 2026-01-05 09:00 UTC).

    Raises ``KeyError`` for a type that no event kind has.
    """
    return EVENT_MODELS[EVENT_TYPES[event_type]].model_validate(example_event_dict(event_type))


def example_event_dict(event_type: str) -> dict[str, Any]:
    """A valid event of ``event_type`` as a fresh JSON-ready dict (change it freely).

    Raises ``KeyError`` for a type that no event kind has.
    """
    kind = EVENT_TYPES[event_type]
    payload = copy.deepcopy(_PAYLOADS[kind])
    if event_type == "ticket_resolved":
        payload.update(satisfaction=2, opened_at="2026-01-04T16:30:00-05:00")
    return {
        "schema_version": 1,
        "event_id": f"e-{event_type}-1",
        "customer_id": "c-42",
        "event_time": EXAMPLE_EVENT_TIME,
        "source": _SOURCES[kind],
        "department": "sales/emea",
        "owner": "agent-7",
        "contact": {"name": "Ada Example", "email": "ada@example.com"},
        "type": event_type,
        "payload": payload,
    }


def example_json(event_type: str, changes: Mapping[str, Any] | None = None) -> bytes:
    """:func:`example_event_dict` with ``changes`` applied, serialised to JSON bytes.

    Keys of ``changes`` are dotted paths (``"payload.items.0.quantity"``; list indices as
    numbers); a value of :data:`REMOVE` deletes the field. Handy for building malformed events.
    """
    event = example_event_dict(event_type)
    for path, value in (changes or {}).items():
        *parents, last = path.split(".")
        node: Any = event
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: int | str = int(last) if isinstance(node, list) else last
        if value is REMOVE:
            del node[key]
        else:
            node[key] = value
    return orjson.dumps(event)
