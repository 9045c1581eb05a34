"""Properties over generated events: valid ones round-trip, anything else is rejected cleanly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_core.errors import EventRejected
from schemas import (
    EVENT_TYPES,
    ISO_4217_CODES,
    DeadLetterReason,
    EventParser,
    event_to_json_bytes,
    example_event_dict,
)

PARSER = EventParser(max_bytes=1 << 20, max_future_skew=timedelta(0))
NOW = datetime(2200, 1, 1, tzinfo=UTC)
SETTINGS = settings(max_examples=150, deadline=None, database=None)

ids = st.text(min_size=1, max_size=128)
customer_ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@-",
    min_size=1,
    max_size=128,
)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2105, 1, 1),  # noqa: DTZ001 - stored as 32-bit epoch seconds
    timezones=offsets,
)
optional_text = st.none() | st.text(max_size=50)
money = st.integers(min_value=0, max_value=10**12)

line_items = st.fixed_dictionaries(
    {
        "sku": ids,
        "category": st.text(min_size=1, max_size=20),
        "quantity": st.integers(min_value=1, max_value=10_000),
        "unit_price_minor": money,
    }
)
payloads: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "purchase": st.fixed_dictionaries(
        {
            "order_id": ids,
            "amount_minor": money,
            "currency": st.sampled_from(sorted(ISO_4217_CODES)),
        },
        optional={
            "items": st.lists(line_items, max_size=4),
            "channel": st.sampled_from(["web", "app", "store", "phone", "marketplace", "other"]),
        },
    ),
    "service": st.fixed_dictionaries(
        {"ticket_id": ids},
        optional={
            "category": st.text(min_size=1, max_size=20),
            "priority": st.sampled_from(["low", "normal", "high", "urgent"]),
            "complaint": st.booleans(),
            "satisfaction": st.none() | st.integers(min_value=1, max_value=5),
            "text": st.none() | st.text(max_size=300),
            "opened_at": st.none() | moments.map(datetime.isoformat),
        },
    ),
    "marketing": st.fixed_dictionaries(
        {"campaign_id": ids},
        optional={
            "message_id": st.none() | ids,
            "channel": st.sampled_from(["email", "sms", "push"]),
        },
    ),
}
contacts = st.none() | st.fixed_dictionaries(
    {}, optional=dict.fromkeys(("name", "email", "phone", "address"), optional_text)
)


@st.composite
def events(draw: st.DrawFn) -> tuple[str, dict[str, Any], datetime]:
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    kind = EVENT_TYPES[event_type]
    moment = draw(moments)
    document = {
        "schema_version": 1,
        "event_id": draw(ids),
        "customer_id": draw(customer_ids),
        "event_time": moment.isoformat(),
        "source": draw(st.text(min_size=1, max_size=64)),
        "type": event_type,
        "payload": draw(payloads[kind]),
    }
    for key in ("department", "owner"):
        document[key] = draw(optional_text)
    document["contact"] = draw(contacts)
    return kind, document, moment


@SETTINGS
@given(events())
def test_any_valid_event_parses_and_round_trips(
    generated: tuple[str, dict[str, Any], datetime],
) -> None:
    kind, document, moment = generated
    event = PARSER.parse(orjson.dumps(document), kind, NOW)
    assert event.kind == kind
    assert event.customer_id == document["customer_id"]
    assert event.event_time == moment
    assert event.event_time.utcoffset() == timedelta(0)
    assert event.payload.model_dump(exclude_unset=True).keys() == document["payload"].keys()
    assert PARSER.parse(event_to_json_bytes(event), kind, NOW) == event


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from(["purchase", "service", "marketing"]))
def test_arbitrary_bytes_are_parsed_or_rejected_with_a_reason(raw: bytes, kind: str) -> None:
    assert_parsed_or_rejected(raw, kind)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
fields = st.sampled_from(
    ["schema_version", "event_id", "customer_id", "event_time", "source", "type", "payload",
     "contact", "department"]
)  # fmt: skip


@SETTINGS
@given(
    st.sampled_from(sorted(EVENT_TYPES)),
    st.dictionaries(fields, json_values, max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=20), json_values, max_size=3),
)
def test_corrupted_fields_are_parsed_or_rejected_with_a_reason(
    event_type: str, envelope: dict[str, Any], payload: dict[str, Any]
) -> None:
    document = example_event_dict(event_type)
    document["payload"].update(payload)
    document.update(envelope)
    for kind in ("purchase", "service", "marketing"):
        # json, not orjson: integers beyond 64 bits must reach the parser too.
        assert_parsed_or_rejected(json.dumps(document).encode(), kind)


def assert_parsed_or_rejected(raw: bytes, kind: str) -> None:
    """Parsing gives an event of ``kind`` or a rejection with a known reason and short message."""
    rejection: EventRejected | None = None
    try:
        event = PARSER.parse(raw, kind, NOW)
    except EventRejected as rejected:
        rejection = rejected
    if rejection is None:
        assert event.kind == kind
        return
    assert DeadLetterReason(rejection.reason) is not DeadLetterReason.KEY_MISMATCH
    assert 0 < len(rejection.message) <= 300
