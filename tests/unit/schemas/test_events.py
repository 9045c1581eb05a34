"""Input event models: every type round-trips, times are UTC, models are frozen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from schemas import (
    EVENT_MODELS,
    EVENT_TYPES,
    REMOVE,
    Contact,
    EventParser,
    MarketingEvent,
    PurchaseEvent,
    ServiceEvent,
    event_to_json_bytes,
    example_event,
    example_event_dict,
    example_json,
)

NOW = datetime(2026, 1, 6, tzinfo=UTC)
PARSER = EventParser()
ALL_TYPES = sorted(EVENT_TYPES)


def test_every_kind_has_its_types_and_model() -> None:
    assert set(EVENT_MODELS) == {"purchase", "service", "marketing"}
    assert EVENT_MODELS["purchase"] is PurchaseEvent
    assert PurchaseEvent.event_types == ("order_placed", "order_returned")
    assert ServiceEvent.event_types == ("ticket_opened", "ticket_updated", "ticket_resolved")
    assert len(MarketingEvent.event_types) == 9  # seven message events and the two of consent
    assert len(EVENT_TYPES) == 14
    for kind, model in EVENT_MODELS.items():
        assert model.kind == kind
        assert all(EVENT_TYPES[event_type] == kind for event_type in model.event_types)


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_valid_event_of_every_type_round_trips(event_type: str) -> None:
    kind = EVENT_TYPES[event_type]
    event = PARSER.parse(example_json(event_type), kind, NOW)
    assert type(event) is EVENT_MODELS[kind]
    assert event.type == event_type
    assert event == example_event(event_type)
    wire = event_to_json_bytes(event)
    assert PARSER.parse(wire, kind, NOW) == event
    # The wire form keeps the envelope field names of the contract, with UTC times.
    document = orjson.loads(wire)
    assert document["schema_version"] == 1
    assert document["event_time"] == "2026-01-05T09:00:00Z"
    assert set(example_event_dict(event_type)) <= set(document)


def test_contract_example_parses_to_the_documented_values() -> None:
    raw = (
        b'{"schema_version":1,"event_id":"e-1","customer_id":"c-42",'
        b'"event_time":"2026-01-05T10:00:00+01:00","source":"shop","type":"order_placed",'
        b'"payload":{"order_id":"o-9","amount_minor":2599,"currency":"USD","items":[{"sku":"ink-1",'
        b'"category":"ink","quantity":1,"unit_price_minor":2599}],"channel":"web"}}'
    )
    event = PARSER.parse(raw, "purchase", NOW)
    assert isinstance(event, PurchaseEvent)
    assert event.event_time == datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert event.payload.items[0].sku == "ink-1"
    assert event.department is None
    assert event.contact is None


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-01-05T10:00:00+01:00", datetime(2026, 1, 5, 9, tzinfo=UTC)),
        ("2026-01-05T09:00:00Z", datetime(2026, 1, 5, 9, tzinfo=UTC)),
        ("2026-01-05T09:00:00z", datetime(2026, 1, 5, 9, tzinfo=UTC)),
        ("2026-01-04T23:30:00-09:30", datetime(2026, 1, 5, 9, tzinfo=UTC)),
        ("2026-01-05 09:00:00.250+00:00", datetime(2026, 1, 5, 9, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_times_are_normalised_to_utc(written: str, expected: datetime) -> None:
    raw = example_json("ticket_resolved", {"event_time": written, "payload.opened_at": written})
    event = PARSER.parse(raw, "service", NOW)
    assert isinstance(event, ServiceEvent)
    for moment in (event.event_time, event.payload.opened_at):
        assert moment == expected
        assert moment is not None
        assert moment.tzinfo is UTC


def test_payload_defaults_follow_the_contract() -> None:
    minimal = {"event_time": "2026-01-05T09:00:00Z", "contact": REMOVE}
    purchase = PARSER.parse(
        example_json(
            "order_placed", {**minimal, "payload.items": REMOVE, "payload.channel": REMOVE}
        ),
        "purchase",
        NOW,
    )
    assert isinstance(purchase, PurchaseEvent)
    assert (purchase.payload.items, purchase.payload.channel) == ([], "web")
    ticket = PARSER.parse(
        orjson.dumps({**example_event_dict("ticket_opened"), "payload": {"ticket_id": "t-1"}}),
        "service",
        NOW,
    )
    assert isinstance(ticket, ServiceEvent)
    payload = ticket.payload
    assert (payload.category, payload.priority, payload.complaint) == ("general", "normal", False)
    assert (payload.satisfaction, payload.text, payload.opened_at) == (None, None, None)
    message = PARSER.parse(
        example_json("message_sent", {"payload.channel": REMOVE, "payload.message_id": REMOVE}),
        "marketing",
        NOW,
    )
    assert isinstance(message, MarketingEvent)
    assert (message.payload.channel, message.payload.message_id) == ("email", None)


def test_unknown_envelope_fields_are_ignored() -> None:
    raw = example_json("order_placed", {"trace_id": "abc", "contact.twitter": "@ada"})
    event = PARSER.parse(raw, "purchase", NOW)
    assert "trace_id" not in event.model_dump()
    assert event.contact == Contact(name="Ada Example", email="ada@example.com")


def test_events_are_frozen() -> None:
    event = example_event("order_placed")
    with pytest.raises(ValidationError, match="frozen"):
        event.customer_id = "someone-else"  # type: ignore[misc]
    assert isinstance(event, PurchaseEvent)
    with pytest.raises(ValidationError, match="frozen"):
        event.payload.amount_minor = 1  # type: ignore[misc]


def test_constructing_with_a_naive_time_fails_in_python_too() -> None:
    fields = example_event_dict("message_opened")
    fields["event_time"] = datetime(2026, 1, 5, 9)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValidationError, match="no UTC offset"):
        MarketingEvent.model_validate(fields)


def test_aware_python_datetimes_are_converted_to_utc() -> None:
    fields = example_event_dict("message_opened")
    fields["event_time"] = datetime(2026, 1, 5, 12, tzinfo=timezone(timedelta(hours=3)))
    event = MarketingEvent.model_validate(fields)
    assert event.event_time == datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert event.event_time.tzinfo is UTC


def test_example_json_applies_nested_changes_and_removals() -> None:
    raw = example_json("order_placed", {"payload.items.0.quantity": 3, "owner": REMOVE})
    document = orjson.loads(raw)
    assert document["payload"]["items"][0]["quantity"] == 3
    assert "owner" not in document
    assert example_event_dict("order_placed") != document  # the example itself is untouched


def test_example_of_an_unknown_type_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        example_event("order_shipped")
