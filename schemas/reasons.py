"""Why an input message was dead-lettered: the reason codes of :class:`DeadLetterReason`.

Each code is stable (it is written to ``crm.deadletter`` and counted in metrics), so codes are
only ever added, never renamed.

Examples
--------
>>> DeadLetterReason("negative_amount") is DeadLetterReason.NEGATIVE_AMOUNT
True
>>> str(DeadLetterReason.NOT_JSON)
'not_json'
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DeadLetterReason"]


class DeadLetterReason(StrEnum):
    """Reason code attached to a dead-lettered input message."""

    NOT_JSON = "not_json"
    """The bytes are not valid JSON (truncated, binary, wrong encoding)."""
    NOT_AN_OBJECT = "not_an_object"
    """Valid JSON, but the top level is not an object (an array, string, number...)."""
    EMPTY_MESSAGE = "empty_message"
    """The message value is missing (a tombstone), empty or only whitespace."""
    TOO_LARGE = "too_large"
    """The message is larger than the configured maximum; it was not decoded."""
    SCHEMA_VIOLATION = "schema_violation"
    """A field is missing, has the wrong type or breaks a constraint not listed below."""
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    """``type`` is missing or names no event type of any kind."""
    WRONG_TOPIC = "wrong_topic"
    """``type`` is a valid event type of another kind than the topic carries."""
    NEGATIVE_AMOUNT = "negative_amount"
    """A money amount in minor units is below zero."""
    BAD_CURRENCY = "bad_currency"
    """``currency`` is not a current ISO 4217 code."""
    UNSUPPORTED_CURRENCY = "unsupported_currency"
    """``currency`` is a valid ISO 4217 code that this deployment does not accept."""
    NAIVE_TIMESTAMP = "naive_timestamp"
    """A timestamp has no UTC offset, so the instant it names is unknown."""
    EVENT_TIME_IN_FUTURE = "event_time_in_future"
    """``event_time`` is later than now plus the allowed clock skew."""
    MISSING_CUSTOMER_ID = "missing_customer_id"
    """``customer_id`` is absent, null or empty."""
    BAD_CUSTOMER_ID = "bad_customer_id"
    """``customer_id`` is not a string of 1..128 characters from ``[A-Za-z0-9_.:@-]``."""
    MISSING_EVENT_ID = "missing_event_id"
    """``event_id`` is absent, null or empty."""
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    """``schema_version`` is not a version this consumer reads (only ``1``)."""
    BEYOND_DEDUP_WINDOW = "beyond_dedup_window"
    """The event is older than the dedup window (relative to the newest event of its kind for
    the customer), so it cannot be told apart from an already-applied copy; it was not applied.
    If it is genuinely new, raise the window or replay the topics into fresh state."""
    DUPLICATE_KEY = "duplicate_key"
    """A JSON object names the same key twice (e.g. two ``amount_minor``), so the event could
    mean either value; parsers would silently keep the last one."""
    KEY_MISMATCH = "key_mismatch"
    """The message key is not the event's ``customer_id`` (or is missing), so the customer's
    events could land on different partitions and lose their order."""
