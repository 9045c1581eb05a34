"""Parse raw input messages into events, or reject them with a dead-letter reason.

The fast path reads a plain event with orjson and checks its fields by hand
(:mod:`schemas._decode`, ~10x cheaper than validating); anything else is one pydantic
``validate_json`` on a union discriminated by ``type``, and only a message that fails is looked
at again to find the most specific reason. Either way the event is the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Final

from pydantic import Field, TypeAdapter, ValidationError

from crm_core.errors import ConfigError, EventRejected
from schemas._classify import classify, shorten
from schemas._decode import decode_plain
from schemas._duplicates import duplicate_key
from schemas.currencies import ISO_4217_CODES
from schemas.events import Event, MarketingEvent, PurchaseEvent, ServiceEvent
from schemas.reasons import DeadLetterReason

__all__ = ["EventParser"]

# One adapter per kind, built once per process: each is a union discriminated on ``type`` whose
# tags are that kind's event types, so unknown and other-kind types fail before field validation.
_ADAPTERS: Final[Mapping[str, TypeAdapter[Event]]] = {
    PurchaseEvent.kind: TypeAdapter[Event](Annotated[PurchaseEvent, Field(discriminator="type")]),
    ServiceEvent.kind: TypeAdapter[Event](Annotated[ServiceEvent, Field(discriminator="type")]),
    MarketingEvent.kind: TypeAdapter[Event](Annotated[MarketingEvent, Field(discriminator="type")]),
}

_DEFAULT_MAX_BYTES: Final = 64 * 1024
_DEFAULT_SKEW: Final = timedelta(minutes=5)


class EventParser:
    """Validates raw input messages of any kind; build one per process and reuse it.

    Parameters
    ----------
    max_bytes
        Larger messages are rejected with ``too_large`` without being decoded.
    max_future_skew
        How far ``event_time`` may lie after ``now`` (producer clocks drift).
    accepted_currencies
        ISO 4217 codes this deployment can convert; ``None`` accepts every valid code. A valid
        code outside this set is rejected with ``unsupported_currency``.
    """

    __slots__ = ("_accepted", "_max_bytes", "_skew")

    def __init__(
        self,
        max_bytes: int = _DEFAULT_MAX_BYTES,
        max_future_skew: timedelta = _DEFAULT_SKEW,
        accepted_currencies: frozenset[str] | None = None,
    ) -> None:
        if max_bytes < 1:
            raise ConfigError(f"max_bytes must be at least 1, got {max_bytes}")
        if max_future_skew < timedelta(0):
            raise ConfigError(f"max_future_skew must not be negative, got {max_future_skew}")
        if accepted_currencies is not None:
            unknown = sorted(accepted_currencies - ISO_4217_CODES)
            if unknown:
                raise ConfigError(
                    f"accepted currencies {unknown} are not ISO 4217 codes; "
                    "fix the configured currency list (upper-case codes such as 'USD')"
                )
            accepted_currencies = frozenset(accepted_currencies)
        self._max_bytes = max_bytes
        self._skew = max_future_skew
        self._accepted = accepted_currencies

    def __repr__(self) -> str:
        accepted = None if self._accepted is None else sorted(self._accepted)
        return (
            f"EventParser(max_bytes={self._max_bytes}, max_future_skew={self._skew!r}, "
            f"accepted_currencies={accepted})"
        )

    def parse(self, raw: bytes | None, kind: str, now: datetime) -> Event:
        """Validate one message from the ``kind`` topic (``purchase``, ``service``, ``marketing``).

        ``now`` is the timezone-aware time that decides what "in the future" means. Returns the
        event with all timestamps in UTC; raises :class:`~crm_core.errors.EventRejected` whose
        ``reason`` is a :class:`~schemas.reasons.DeadLetterReason` value and whose ``message``
        says what was wrong and where. Raises ``ValueError`` for an unknown ``kind`` or a naive
        ``now`` (caller bugs, not bad input).

        Examples
        --------
        >>> from datetime import UTC, datetime, timedelta
        >>> parser = EventParser(max_bytes=65536, max_future_skew=timedelta(minutes=5))
        >>> now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        >>> raw = (
        ...     b'{"schema_version":1,"event_id":"e-1","customer_id":"c-42",'
        ...     b'"event_time":"2026-01-05T10:00:00+01:00","source":"shop","type":"order_placed",'
        ...     b'"payload":{"order_id":"o-9","amount_minor":2599,"currency":"USD"}}'
        ... )
        >>> event = parser.parse(raw, "purchase", now)
        >>> event.payload.amount_minor, event.event_time.isoformat()
        (2599, '2026-01-05T09:00:00+00:00')
        >>> parser.parse(raw.replace(b"2599", b"-1"), "purchase", now)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        crm_core.errors.EventRejected: negative_amount: payload.amount_minor: Input should be ...
        >>> parser.parse(raw, "service", now)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        crm_core.errors.EventRejected: wrong_topic: type: 'order_placed' is a purchase event; ...
        """
        if not raw:
            raise EventRejected(DeadLetterReason.EMPTY_MESSAGE.value, "message has no value")
        if len(raw) > self._max_bytes:
            raise EventRejected(
                DeadLetterReason.TOO_LARGE.value,
                f"message is {len(raw)} bytes, the limit is {self._max_bytes}",
            )
        try:
            adapter = _ADAPTERS[kind]
        except KeyError:
            raise ValueError(f"unknown kind {kind!r}; expected one of {list(_ADAPTERS)}") from None
        event = decode_plain(raw, kind)
        if event is None:  # not the plain shape: pydantic decides, and names the reason
            event = _validate(adapter, raw, kind)
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if event.event_time > now + self._skew:
            raise EventRejected(
                DeadLetterReason.EVENT_TIME_IN_FUTURE.value,
                f"event_time: {event.event_time.isoformat()} is after now "
                f"({now.isoformat()}) plus the allowed skew of {self._skew}",
            )
        if (
            self._accepted is not None
            and isinstance(event, PurchaseEvent)
            and event.payload.currency not in self._accepted
        ):
            raise EventRejected(
                DeadLetterReason.UNSUPPORTED_CURRENCY.value,
                shorten(
                    f"payload.currency: {event.payload.currency!r} is not accepted here; "
                    f"accepted: {', '.join(sorted(self._accepted))}"
                ),
            )
        return event


def _validate(adapter: TypeAdapter[Event], raw: bytes, kind: str) -> Event:
    try:
        event = adapter.validate_json(raw, strict=True)
    except ValidationError as exc:
        raise _rejection(exc, raw, kind) from exc
    if (duplicate := duplicate_key(raw)) is not None:
        raise EventRejected(
            DeadLetterReason.DUPLICATE_KEY.value,
            f"key {shorten(duplicate, 60)!r} appears twice in one object; an event must "
            "say each thing once (JSON parsers would silently keep the last value)",
        )
    return event


def _rejection(exc: ValidationError, raw: bytes, kind: str) -> EventRejected:
    if not raw.strip():
        return EventRejected(DeadLetterReason.EMPTY_MESSAGE.value, "message is only whitespace")
    reason, message = classify(exc, kind)
    return EventRejected(reason.value, message)
