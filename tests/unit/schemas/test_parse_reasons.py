"""Every kind of malformed input is rejected with the most specific dead-letter reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_core.errors import ConfigError, EventRejected
from schemas import REMOVE, DeadLetterReason, EventParser, PurchaseEvent, example_json

R = DeadLetterReason
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # the examples' event time, in UTC
MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def parser() -> EventParser:
    return EventParser(
        max_bytes=MAX_BYTES,
        max_future_skew=timedelta(minutes=5),
        accepted_currencies=frozenset({"USD", "EUR", "JPY"}),
    )


def purchase(changes: dict[str, Any]) -> bytes:
    return example_json("order_placed", changes)


def ticket(changes: dict[str, Any]) -> bytes:
    return example_json("ticket_resolved", changes)


def twice(raw: bytes, field: bytes, first: bytes) -> bytes:
    """``raw`` with ``first`` written before ``field`` (``"name":value``), in the same object."""
    assert raw.count(field) == 1, field
    return raw.replace(field, first + b"," + field)


ORDER = example_json("order_placed")


def reject(parser: EventParser, raw: bytes | None, kind: str = "purchase") -> EventRejected:
    with pytest.raises(EventRejected) as caught:
        parser.parse(raw, kind, NOW)
    return caught.value


# (raw message, topic kind, expected reason, text the message must contain)
MALFORMED = [
    pytest.param(None, "purchase", R.EMPTY_MESSAGE, "no value", id="tombstone"),
    pytest.param(b"", "purchase", R.EMPTY_MESSAGE, "no value", id="empty-bytes"),
    pytest.param(b" \n\t ", "service", R.EMPTY_MESSAGE, "whitespace", id="whitespace-only"),
    pytest.param(b"{" * (MAX_BYTES + 1), "purchase", R.TOO_LARGE, "65537 bytes", id="huge"),
    pytest.param(purchase({})[:-7], "purchase", R.NOT_JSON, "EOF", id="truncated-json"),
    pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\r", "purchase", R.NOT_JSON, "JSON", id="binary"),
    pytest.param(b'{"event_id":"\xff\xfe"}', "purchase", R.NOT_JSON, "unicode", id="bad-utf8"),
    pytest.param(b"order_placed c-42 2599", "purchase", R.NOT_JSON, "JSON", id="plain-text"),
    pytest.param(b"{'type': 'x'}", "purchase", R.NOT_JSON, "JSON", id="single-quotes"),
    pytest.param(b"[" + purchase({}) + b"]", "purchase", R.NOT_AN_OBJECT, "array", id="array"),
    pytest.param(b'"order_placed"', "purchase", R.NOT_AN_OBJECT, "string", id="string"),
    pytest.param(b"42", "purchase", R.NOT_AN_OBJECT, "number", id="number"),
    pytest.param(b"null", "purchase", R.NOT_AN_OBJECT, "null", id="json-null"),
    pytest.param(purchase({"type": "order_shipped"}), "purchase", R.UNKNOWN_EVENT_TYPE,
                 "'order_shipped'", id="unknown-type"),
    pytest.param(purchase({"type": REMOVE}), "purchase", R.UNKNOWN_EVENT_TYPE, "type: required",
                 id="missing-type"),
    pytest.param(purchase({"type": 7}), "purchase", R.UNKNOWN_EVENT_TYPE, "type", id="int-type"),
    pytest.param(purchase({"type": ["order_placed"]}), "purchase", R.UNKNOWN_EVENT_TYPE, "type",
                 id="list-type"),
    pytest.param(ticket({}), "purchase", R.WRONG_TOPIC, "'ticket_resolved' is a service event",
                 id="service-on-purchase"),
    pytest.param(purchase({}), "marketing", R.WRONG_TOPIC, "carries marketing events",
                 id="purchase-on-marketing"),
    pytest.param(purchase({"payload.amount_minor": -1}), "purchase", R.NEGATIVE_AMOUNT,
                 "payload.amount_minor", id="negative-amount"),
    pytest.param(purchase({"payload.items.0.unit_price_minor": -5}), "purchase",
                 R.NEGATIVE_AMOUNT, "payload.items[0].unit_price_minor", id="negative-unit-price"),
    pytest.param(purchase({"payload.currency": "XYZ"}), "purchase", R.BAD_CURRENCY, "'XYZ'",
                 id="made-up-currency"),
    pytest.param(purchase({"payload.currency": "usd"}), "purchase", R.BAD_CURRENCY, "'usd'",
                 id="lower-case-currency"),
    pytest.param(purchase({"payload.currency": "HRK"}), "purchase", R.BAD_CURRENCY, "'HRK'",
                 id="withdrawn-currency"),
    pytest.param(purchase({"payload.currency": "GBP"}), "purchase", R.UNSUPPORTED_CURRENCY,
                 "'GBP' is not accepted", id="valid-but-not-accepted"),
    pytest.param(purchase({"event_time": "2026-01-05T10:00:00"}), "purchase", R.NAIVE_TIMESTAMP,
                 "event_time", id="naive-event-time"),
    pytest.param(ticket({"payload.opened_at": "2026-01-04T16:30:00"}), "service",
                 R.NAIVE_TIMESTAMP, "payload.opened_at", id="naive-opened-at"),
    pytest.param(purchase({"event_time": "2026-01-05T09:05:01Z"}), "purchase",
                 R.EVENT_TIME_IN_FUTURE, "event_time", id="future-event-time"),
    pytest.param(purchase({"customer_id": REMOVE}), "purchase", R.MISSING_CUSTOMER_ID,
                 "customer_id: required", id="missing-customer-id"),
    pytest.param(purchase({"customer_id": None}), "purchase", R.MISSING_CUSTOMER_ID,
                 "customer_id", id="null-customer-id"),
    pytest.param(purchase({"customer_id": ""}), "purchase", R.MISSING_CUSTOMER_ID,
                 "customer_id", id="empty-customer-id"),
    pytest.param(purchase({"customer_id": "{c-42}"}), "purchase", R.BAD_CUSTOMER_ID,
                 "'{c-42}'", id="hash-tag-braces-in-customer-id"),
    pytest.param(purchase({"customer_id": "c 42"}), "purchase", R.BAD_CUSTOMER_ID,
                 "customer_id", id="space-in-customer-id"),
    pytest.param(purchase({"customer_id": 42}), "purchase", R.BAD_CUSTOMER_ID, "customer_id",
                 id="int-customer-id"),
    pytest.param(purchase({"customer_id": "c" * 129}), "purchase", R.BAD_CUSTOMER_ID,
                 "at most 128", id="long-customer-id"),
    pytest.param(purchase({"event_id": REMOVE}), "purchase", R.MISSING_EVENT_ID,
                 "event_id: required", id="missing-event-id"),
    pytest.param(purchase({"event_id": ""}), "purchase", R.MISSING_EVENT_ID, "event_id",
                 id="empty-event-id"),
    pytest.param(purchase({"schema_version": 2}), "purchase", R.UNSUPPORTED_SCHEMA_VERSION,
                 "got 2", id="schema-version-2"),
    pytest.param(purchase({"schema_version": 2, "type": "order_cancelled"}), "purchase",
                 R.UNSUPPORTED_SCHEMA_VERSION, "version 1", id="schema-version-2-new-type"),
    pytest.param(purchase({"schema_version": "1"}), "purchase", R.UNSUPPORTED_SCHEMA_VERSION,
                 "schema_version", id="schema-version-string"),
    pytest.param(purchase({"schema_version": REMOVE}), "purchase", R.SCHEMA_VIOLATION,
                 "schema_version: required", id="missing-schema-version"),
    pytest.param(ticket({"payload.satisfaction": 6}), "service", R.SCHEMA_VIOLATION,
                 "payload.satisfaction", id="satisfaction-6"),
    pytest.param(purchase({"payload.items.0.quantity": 0}), "purchase", R.SCHEMA_VIOLATION,
                 "payload.items[0].quantity", id="quantity-0"),
    pytest.param(purchase({"payload.amount_minor": "2599"}), "purchase", R.SCHEMA_VIOLATION,
                 "valid integer", id="amount-as-string"),
    pytest.param(purchase({"payload.amount_minor": 25.99}), "purchase", R.SCHEMA_VIOLATION,
                 "payload.amount_minor", id="amount-as-float"),
    pytest.param(purchase({"payload.items": [{"sku": "a", "category": "b", "quantity": 1,
                                              "unit_price_minor": 1}] * 501}),
                 "purchase", R.SCHEMA_VIOLATION, "at most 500", id="too-many-items"),
    pytest.param(ticket({"payload.text": "x" * 5001}), "service", R.SCHEMA_VIOLATION,
                 "payload.text", id="text-too-long"),
    pytest.param(purchase({"payload.coupon": "SAVE10"}), "purchase", R.SCHEMA_VIOLATION,
                 "payload.coupon", id="unknown-payload-field"),
    pytest.param(purchase({"payload": [1, 2]}), "purchase", R.SCHEMA_VIOLATION, "payload",
                 id="payload-not-object"),
    pytest.param(purchase({"payload": REMOVE}), "purchase", R.SCHEMA_VIOLATION,
                 "payload: required", id="missing-payload"),
    pytest.param(purchase({"event_time": "yesterday"}), "purchase", R.SCHEMA_VIOLATION,
                 "event_time", id="unparseable-time"),
    pytest.param(purchase({"event_time": 1767603600}), "purchase", R.SCHEMA_VIOLATION,
                 "event_time", id="epoch-seconds-time"),
    pytest.param(ticket({"payload.priority": "critical"}), "service", R.SCHEMA_VIOLATION,
                 "payload.priority", id="bad-priority"),
    pytest.param(purchase({"payload.channel": "fax"}), "purchase", R.SCHEMA_VIOLATION,
                 "payload.channel", id="bad-purchase-channel"),
    pytest.param(ticket({"payload.complaint": "yes"}), "service", R.SCHEMA_VIOLATION,
                 "payload.complaint", id="complaint-not-bool"),
    pytest.param(purchase({"source": ""}), "purchase", R.SCHEMA_VIOLATION, "source",
                 id="empty-source"),
    pytest.param(example_json("message_clicked", {"payload.channel": "fax"}), "marketing",
                 R.SCHEMA_VIOLATION, "payload.channel", id="bad-marketing-channel"),
    pytest.param(twice(ORDER, b'"amount_minor":2599', b'"amount_minor":100'), "purchase",
                 R.DUPLICATE_KEY, "'amount_minor' appears twice", id="duplicate-amount"),
    pytest.param(twice(ORDER, b'"customer_id":"c-42"', b'"customer_id":"c-43"'), "purchase",
                 R.DUPLICATE_KEY, "'customer_id'", id="duplicate-customer-id"),
    pytest.param(twice(ORDER, b'"quantity":1', b'"quantity":1'), "purchase", R.DUPLICATE_KEY,
                 "'quantity'", id="duplicate-in-a-line-item"),
    pytest.param(twice(ORDER, b'"owner":"agent-7"', b'"note":1,"note":2'), "purchase",
                 R.DUPLICATE_KEY, "'note'", id="duplicate-ignored-field"),
    pytest.param(twice(ORDER, b'"amount_minor":2599', b'"amount\\u005fminor":7'), "purchase",
                 R.DUPLICATE_KEY, "'amount_minor'", id="duplicate-spelt-with-an-escape"),
    pytest.param(twice(ORDER, b'"owner":"agent-7"', b'"x\\u003a":NaN,"x:":1'), "purchase",
                 R.DUPLICATE_KEY, "'x:'", id="duplicate-with-escaped-colon-and-nan"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "kind", "reason", "fragment"), MALFORMED)
def test_malformed_input_is_rejected_with_its_reason(
    parser: EventParser, raw: bytes | None, kind: str, reason: R, fragment: str
) -> None:
    rejected = reject(parser, raw, kind)
    assert rejected.reason == reason.value
    assert fragment in rejected.message
    assert 0 < len(rejected.message) <= 300


def test_the_table_covers_every_reason_the_parser_gives() -> None:
    covered = {param.values[2] for param in MALFORMED}
    # key_mismatch and beyond_dedup_window are decided by the consumer and the store, which see
    # the Kafka key and the customer's history; the parser sees neither.
    assert covered == set(DeadLetterReason) - {R.KEY_MISMATCH, R.BEYOND_DEDUP_WINDOW}


@pytest.mark.parametrize(
    "raw",
    [
        twice(ORDER, b'"owner":"agent-7"', b'"note":"a\\u003ab"'),  # an escaped colon
        twice(ORDER, b'"owner":"agent-7"', b'"x":{"a":1},"y":{"a":1}'),  # same key, other objects
        twice(ORDER, b'"owner":"agent-7"', b'"huge":1e400,"n":NaN'),  # what orjson refuses
        ORDER.replace(b"},{", b"}").replace(b'"channel":"web"', b'"channel" : "web"'),
    ],
    ids=["escaped-colon", "same-key-in-two-objects", "orjson-refuses", "spaces-around-colon"],
)
def test_repeated_names_that_are_not_duplicate_keys_are_accepted(
    parser: EventParser, raw: bytes
) -> None:
    event = parser.parse(raw, "purchase", NOW)
    assert isinstance(event, PurchaseEvent)
    assert event.payload.amount_minor == 2599


def test_the_most_fundamental_error_wins_when_there_are_several(parser: EventParser) -> None:
    raw = purchase({"customer_id": REMOVE, "event_time": "2026-01-05T10:00:00"})
    rejected = reject(parser, raw)
    assert rejected.reason == R.MISSING_CUSTOMER_ID
    assert rejected.message.endswith("(+1 more)")
    raw = purchase({"schema_version": 3, "customer_id": REMOVE, "payload.amount_minor": -1})
    assert reject(parser, raw).reason == R.UNSUPPORTED_SCHEMA_VERSION


def test_pii_and_free_text_are_not_echoed_in_messages(parser: EventParser) -> None:
    secret = "ada@example.com-secret"
    rejected = reject(parser, purchase({"contact.email": 12345, "contact.phone": secret}))
    assert rejected.message.startswith("contact.email")
    assert "12345" not in rejected.message
    rejected = reject(parser, ticket({"payload.text": secret * 300}), "service")
    assert secret not in rejected.message


def test_messages_stay_short_for_long_inputs(parser: EventParser) -> None:
    rejected = reject(parser, purchase({"type": "x" * 3000}))
    assert rejected.reason == R.UNKNOWN_EVENT_TYPE
    assert len(rejected.message) <= 300


def test_event_at_the_edge_of_the_allowed_skew_is_accepted(parser: EventParser) -> None:
    event = parser.parse(purchase({"event_time": "2026-01-05T09:05:00Z"}), "purchase", NOW)
    assert event.event_time == NOW + timedelta(minutes=5)


def test_size_limit_is_inclusive(parser: EventParser) -> None:
    raw = purchase({})
    padded = raw[:-1] + b" " * (MAX_BYTES - len(raw)) + b"}"
    assert len(padded) == MAX_BYTES
    assert parser.parse(padded, "purchase", NOW).customer_id == "c-42"


def test_any_currency_is_accepted_without_an_accept_list() -> None:
    event = EventParser().parse(purchase({"payload.currency": "GBP"}), "purchase", NOW)
    assert isinstance(event, PurchaseEvent)
    assert event.payload.currency == "GBP"


def test_caller_bugs_raise_value_error_not_rejections(parser: EventParser) -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        parser.parse(purchase({}), "purchases", NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        parser.parse(purchase({}), "purchase", NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_future_skew": timedelta(seconds=-1)}, "max_future_skew"),
        ({"accepted_currencies": frozenset({"USD", "DOLLAR"})}, "DOLLAR"),
    ],
)
def test_bad_parser_configuration_is_a_config_error(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EventParser(**options)


def test_parser_repr_shows_its_configuration(parser: EventParser) -> None:
    assert repr(parser) == (
        "EventParser(max_bytes=65536, max_future_skew=datetime.timedelta(seconds=300), "
        "accepted_currencies=['EUR', 'JPY', 'USD'])"
    )
