"""Constrained field types shared by the input events and the output models.

Validators that have a dead-letter reason of their own raise ``PydanticCustomError`` with the
reason code as the error type, so :mod:`schemas.parse` classifies them by lookup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from schemas.currencies import ISO_4217_CODES
from schemas.reasons import DeadLetterReason

__all__ = [
    "CUSTOMER_ID_PATTERN",
    "CurrencyCode",
    "CustomerId",
    "Identifier",
    "UtcDatetime",
]

#: What a customer id may contain: it is embedded in Redis hash tags, so no braces or spaces.
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_.:@\-]+$"

_NAIVE = DeadLetterReason.NAIVE_TIMESTAMP.value
_BAD_CURRENCY = DeadLetterReason.BAD_CURRENCY.value


#: Times are stored as unsigned 32-bit epoch seconds: the range they can take.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2106, 1, 1, tzinfo=UTC)


def _to_utc(value: datetime) -> datetime:
    """Reject naive datetimes and times outside 1970..2106; convert aware ones to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError(
            _NAIVE, "timestamp has no UTC offset; send RFC 3339 with 'Z' or '+hh:mm'"
        )
    utc = value.astimezone(UTC)
    if not EARLIEST <= utc < LATEST:
        raise ValueError("timestamp must be between 1970-01-01 and 2106-01-01 UTC")
    return utc


def _check_currency(value: str) -> str:
    if value not in ISO_4217_CODES:
        raise PydanticCustomError(
            _BAD_CURRENCY, "'{code}' is not an ISO 4217 currency code", {"code": value[:16]}
        )
    return value


#: A timezone-aware instant, normalised to UTC. Naive input fails with ``naive_timestamp``.
UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]

#: A customer id: 1..128 characters from ``[A-Za-z0-9_.:@-]``.
CustomerId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=CUSTOMER_ID_PATTERN)
]

#: A producer-given identifier (event, order, ticket, campaign...): 1..128 characters.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128)]

#: A current ISO 4217 code such as ``"USD"``. Anything else fails with ``bad_currency``.
CurrencyCode = Annotated[
    str,
    AfterValidator(_check_currency),
    WithJsonSchema({"type": "string", "enum": sorted(ISO_4217_CODES)}),
    Field(description="ISO 4217 currency code, upper case (e.g. USD)."),
]
