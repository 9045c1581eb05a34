"""Turn a pydantic ``ValidationError`` into the most specific dead-letter reason and a message.

This is the slow path: it runs only for messages that failed validation. Each error maps to a
reason by lookup (custom error types *are* reason codes; the rest map by field and error type);
when a message has several errors, the one whose reason comes first in :data:`PRECEDENCE` wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from schemas.events import EVENT_TYPES
from schemas.reasons import DeadLetterReason as R

__all__ = ["MAX_MESSAGE_CHARS", "PRECEDENCE", "classify", "shorten"]

#: Longest message a rejection carries.
MAX_MESSAGE_CHARS = 300

#: Most specific / most fundamental first: a version-2 event is reported as such, not as the
#: dozen field errors that follow from it.
PRECEDENCE: tuple[R, ...] = (
    R.UNSUPPORTED_SCHEMA_VERSION,
    R.WRONG_TOPIC,
    R.UNKNOWN_EVENT_TYPE,
    R.MISSING_EVENT_ID,
    R.MISSING_CUSTOMER_ID,
    R.BAD_CUSTOMER_ID,
    R.NAIVE_TIMESTAMP,
    R.NEGATIVE_AMOUNT,
    R.BAD_CURRENCY,
    R.SCHEMA_VIOLATION,
)
_RANK: Mapping[R, int] = {reason: rank for rank, reason in enumerate(PRECEDENCE)}
_CUSTOM: Mapping[str, R] = {reason.value: reason for reason in R}
_ABSENT = frozenset({"missing", "string_too_short"})
_AMOUNTS = frozenset({"amount_minor", "unit_price_minor"})
# Fields whose values are never echoed in messages (PII or free text).
_NO_ECHO = frozenset({"contact", "text"})
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classify(exc: ValidationError, kind: str) -> tuple[R, str]:
    """The dead-letter reason and a short message for a message of topic ``kind``."""
    errors = exc.errors(include_url=False)
    ranked = [(_reason(error), error) for error in errors]
    reason, error = min(ranked, key=lambda pair: _RANK.get(pair[0], -1))
    message = _describe(reason, error, kind)
    if len(errors) > 1:
        message = f"{shorten(message, MAX_MESSAGE_CHARS - 20)} (+{len(errors) - 1} more)"
    return reason, shorten(message)


def _reason(error: ErrorDetails) -> R:
    kind_of_error = error["type"]
    custom = _CUSTOM.get(kind_of_error)
    if custom is not None:
        return custom
    loc = error["loc"]
    if not loc:  # errors of the whole message, before any event model was chosen
        return _top_level_reason(kind_of_error, error["input"])
    path = loc[1:]  # loc[0] is the discriminator tag the event was validated as
    field = path[0] if path else None
    if field == "schema_version":
        return R.SCHEMA_VIOLATION if kind_of_error == "missing" else R.UNSUPPORTED_SCHEMA_VERSION
    if field == "event_id" and _is_absent(error):
        return R.MISSING_EVENT_ID
    if field == "customer_id":
        return R.MISSING_CUSTOMER_ID if _is_absent(error) else R.BAD_CUSTOMER_ID
    if kind_of_error == "greater_than_equal" and path[-1] in _AMOUNTS:
        return R.NEGATIVE_AMOUNT
    return R.SCHEMA_VIOLATION


def _top_level_reason(kind_of_error: str, value: Any) -> R:
    if kind_of_error == "json_invalid":
        return R.NOT_JSON
    if kind_of_error in ("union_tag_invalid", "union_tag_not_found") and isinstance(value, dict):
        version = value.get("schema_version", 1)
        if type(version) is not int or version != 1:
            return R.UNSUPPORTED_SCHEMA_VERSION
        event_type = value.get("type")
        known = isinstance(event_type, str) and event_type in EVENT_TYPES
        return R.WRONG_TOPIC if known else R.UNKNOWN_EVENT_TYPE
    if not isinstance(value, dict):
        return R.NOT_AN_OBJECT
    return R.SCHEMA_VIOLATION


def _is_absent(error: ErrorDetails) -> bool:
    return error["type"] in _ABSENT or error.get("input", "") is None


def _describe(reason: R, error: ErrorDetails, kind: str) -> str:
    loc = error["loc"]
    if not loc:
        return _describe_top_level(reason, error, kind)
    path = loc[1:]
    where = _path(path)
    if error["type"] == "missing":
        return f"{where}: required field is missing"
    message = error["msg"]
    value = error.get("input")
    if not _NO_ECHO.intersection(str(part) for part in path) and _is_scalar(value):
        message = f"{message}, got {shorten(repr(value), 40)}"
    return f"{where}: {message}"


def _describe_top_level(reason: R, error: ErrorDetails, kind: str) -> str:
    value = error.get("input")
    if reason is R.NOT_JSON:
        detail = (error.get("ctx") or {}).get("error", "invalid JSON")
        return f"message is not valid JSON: {detail}"
    if reason is R.NOT_AN_OBJECT:
        return f"top level is {_json_name(value)}, expected an object"
    if reason is R.SCHEMA_VIOLATION or not isinstance(value, dict):
        return f"message: {error['msg']}"
    event_type = value.get("type")
    expected = ", ".join(t for t, k in EVENT_TYPES.items() if k == kind)
    if reason is R.UNSUPPORTED_SCHEMA_VERSION:
        version = shorten(repr(value.get("schema_version")), 40)
        return f"schema_version: this consumer reads version 1, got {version}"
    if reason is R.WRONG_TOPIC:
        other = EVENT_TYPES[str(event_type)]
        return f"type: {event_type!r} is a {other} event; this topic carries {kind} events"
    if "type" not in value:
        return f"type: required field is missing; expected one of {expected}"
    return f"type: unknown event type {shorten(repr(event_type), 40)}; expected one of {expected}"


def _path(path: tuple[int | str, ...]) -> str:
    """``("payload", "items", 0, "sku")`` → ``"payload.items[0].sku"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "message"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


def _json_name(value: Any) -> str:
    if value is None:
        return "null"
    for python_type, name in _JSON_NAMES.items():
        if isinstance(value, python_type):
            return name
    return "a number"
