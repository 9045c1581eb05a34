"""What crm-scoring publishes: dead letters, score snapshots and alerts.

All output models are frozen, reject NaN and infinity in float fields (they would silently
become ``null`` in JSON), and serialise with :meth:`to_json_bytes`.

Examples
--------
>>> from datetime import UTC, datetime
>>> snapshot = ScoreSnapshot(
...     customer_id="c-42", as_of=datetime(2026, 1, 5, 9, tzinfo=UTC), trigger="event",
...     event_id="e-1", recency_days=0.0, frequency=1, monetary_minor=2599,
... )
>>> ScoreSnapshot.from_json_bytes(snapshot.to_json_bytes()) == snapshot
True
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm_core.errors import EventRejected
from schemas._types import CustomerId, UtcDatetime
from schemas.reasons import DeadLetterReason

__all__ = [
    "DEAD_LETTER_KEY_BYTES",
    "DEAD_LETTER_MAX_BYTES",
    "DEAD_LETTER_MESSAGE_CHARS",
    "DEAD_LETTER_VALUE_BYTES",
    "Alert",
    "AlertType",
    "CustomerErased",
    "DeadLetter",
    "OutputModel",
    "ScoreSnapshot",
    "Severity",
    "TrainingExample",
    "dead_letter_key",
]


class OutputModel(BaseModel):
    """Base of the published models: frozen, finite floats, fast JSON both ways."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        allow_inf_nan=False,
        # Every field is always written, so the exported schema marks them all required.
        json_schema_serialization_defaults_required=True,
    )

    def to_json_bytes(self) -> bytes:
        """Compact JSON, as written to the topic (datetimes in UTC with ``Z``)."""
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def from_json_bytes(cls, data: bytes | str) -> Self:
        """Read a message written by :meth:`to_json_bytes` (unknown fields are ignored)."""
        return cls.model_validate_json(data)


# --- dead letters -------------------------------------------------------------------------------
#: The most of an original key a dead letter keeps (raw bytes; customer ids are <= 128).
DEAD_LETTER_KEY_BYTES = 1024
#: The most of an original value a dead letter keeps (raw bytes, before base64).
DEAD_LETTER_VALUE_BYTES = 256 * 1024
#: The most characters of the rejection message a dead letter keeps.
DEAD_LETTER_MESSAGE_CHARS = 1000
#: An upper bound on a dead letter's Kafka key plus value, in bytes, whatever the original:
#: both prefixes in base64, the message with every character escaped (``\\u00XX``), a topic name
#: of Kafka's 249 characters and the fixed fields. Under the broker's default limit of
#: 1,048,588 bytes (``message.max.bytes``) with room to spare; a topic configured below it
#: sends dead letters to the quarantine instead (``streams/ingest/quarantine.py``).
DEAD_LETTER_MAX_BYTES = (
    DEAD_LETTER_KEY_BYTES
    + 4 * (DEAD_LETTER_KEY_BYTES + 2) // 3
    + 4 * (DEAD_LETTER_VALUE_BYTES + 2) // 3
    + 6 * DEAD_LETTER_MESSAGE_CHARS
    + 249
    + 1024
)


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The Kafka key of the dead letter of a message keyed ``key``: its first
    :data:`DEAD_LETTER_KEY_BYTES` (the customer id, for a well-formed message)."""
    return None if key is None else key[:DEAD_LETTER_KEY_BYTES]


class DeadLetter(OutputModel):
    """An input message that could not be used, with where it came from and why.

    Schema version 2: key and value are kept as bounded prefixes with their full sizes and the
    SHA-256 of each whole original, so a dead letter always fits in a Kafka message
    (:data:`DEAD_LETTER_MAX_BYTES`); version 1 kept the whole key, twice.
    """

    schema_version: Literal[2] = 2
    reason: DeadLetterReason
    message: str = Field(
        description="What was wrong and where (field path); at most "
        f"{DEAD_LETTER_MESSAGE_CHARS} characters."
    )
    source_topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key_b64: str | None = Field(
        default=None,
        description=f"Original key, base64: its first {DEAD_LETTER_KEY_BYTES} bytes; null if none.",
    )
    key_size: int | None = Field(
        default=None, ge=0, description="Length of the original key, bytes; null if none."
    )
    key_truncated: bool = Field(
        default=False, description="True when key_b64 holds only the first bytes of the key."
    )
    key_sha256: str | None = Field(
        default=None, description="SHA-256 (hex) of the whole original key; null if none."
    )
    value_b64: str = Field(
        default="",
        description=f"Original value, base64: its first {DEAD_LETTER_VALUE_BYTES} bytes; '' if "
        "none.",
    )
    value_size: int = Field(default=0, ge=0, description="Length of the original value, bytes.")
    value_truncated: bool = Field(
        default=False, description="True when value_b64 holds only the first bytes of the value."
    )
    value_sha256: str | None = Field(
        default=None, description="SHA-256 (hex) of the whole original value."
    )
    broker_timestamp_ms: int | None = None
    detected_at: UtcDatetime

    @classmethod
    def from_rejection(
        cls,
        error: EventRejected,
        *,
        source_topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        detected_at: datetime,
        broker_timestamp_ms: int | None = None,
    ) -> DeadLetter:
        """Build the dead letter for a message that parsing rejected with ``error``.

        Keeps at most :data:`DEAD_LETTER_KEY_BYTES` of the key, :data:`DEAD_LETTER_VALUE_BYTES`
        of the value and :data:`DEAD_LETTER_MESSAGE_CHARS` of the message, so that, with
        :func:`dead_letter_key` as its Kafka key, it is never larger than
        :data:`DEAD_LETTER_MAX_BYTES`.
        """
        original = value or b""
        kept = original[:DEAD_LETTER_VALUE_BYTES]
        message = error.message
        if len(message) > DEAD_LETTER_MESSAGE_CHARS:
            message = message[: DEAD_LETTER_MESSAGE_CHARS - 3] + "..."
        return cls(
            reason=DeadLetterReason(error.reason),
            message=message,
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key_b64=None if key is None else _b64(dead_letter_key(key) or b""),
            key_size=None if key is None else len(key),
            key_truncated=key is not None and len(key) > DEAD_LETTER_KEY_BYTES,
            key_sha256=None if key is None else hashlib.sha256(key).hexdigest(),
            value_b64=_b64(kept),
            value_size=len(original),
            value_truncated=len(kept) < len(original),
            value_sha256=hashlib.sha256(original).hexdigest(),
            broker_timestamp_ms=broker_timestamp_ms,
            detected_at=detected_at,
        )

    def original_key(self) -> bytes | None:
        """The original message key (its first bytes when ``key_truncated``), from base64."""
        return None if self.key_b64 is None else base64.b64decode(self.key_b64)

    def original_value(self) -> bytes:
        """The original value bytes (its first bytes when ``value_truncated``; ``b""`` if none)."""
        return base64.b64decode(self.value_b64)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- scores -------------------------------------------------------------------------------------
class ScoreSnapshot(OutputModel):
    """A customer's scores after a change, valid at event time ``as_of``.

    Money is in minor units of the base currency. Optional fields are ``None`` until the scorer
    that fills them has run.
    """

    schema_version: Literal[1] = 1
    customer_id: CustomerId
    as_of: UtcDatetime = Field(description="Event time at which these scores hold.")
    trigger: Literal["event", "timer"]
    event_id: str | None = Field(default=None, description="The triggering event, if any.")
    recency_days: float | None = Field(
        default=None, ge=0, description="Days from the last order to as_of; None: never ordered."
    )
    frequency: int = Field(ge=0, description="Number of orders.")
    monetary_minor: int = Field(description="Net spend (orders minus returns), minor units.")
    r_score: int | None = Field(default=None, ge=1, le=5)
    f_score: int | None = Field(default=None, ge=1, le=5)
    m_score: int | None = Field(default=None, ge=1, le=5)
    segment: str | None = None
    p_alive: float | None = Field(default=None, ge=0, le=1)
    expected_purchases_30d: float | None = Field(default=None, ge=0)
    expected_purchases_90d: float | None = Field(default=None, ge=0)
    clv: float | None = Field(default=None, description="Customer lifetime value, minor units.")
    next_purchase_at: UtcDatetime | None = Field(
        default=None, description="When the next purchase is expected (within the CLV horizon)."
    )
    probability_model_version: str | None = Field(
        default=None, description="Version of the BG/NBD + Gamma-Gamma model behind p_alive/CLV."
    )
    churn_probability: float | None = Field(default=None, ge=0, le=1)
    churn_model_version: str | None = Field(
        default=None, description="Churn model version, or 'fallback:p_alive' (1 - P(alive))."
    )
    value_group: str | None = Field(
        default=None,
        description="high_value_stable, high_value_at_risk, low_value_stable, "
        "low_value_at_risk or no_value (None until CLV and churn are known).",
    )
    cluster: int | None = Field(
        default=None, ge=0, description="Exploratory segment: the nearest published centre."
    )
    reasons: list[str] = Field(default_factory=list, description="Top contributing features.")


# --- alerts -------------------------------------------------------------------------------------
class AlertType(StrEnum):
    """What an alert is about."""

    CHURN_RISK = "churn_risk"
    HIGH_VALUE_AT_RISK = "high_value_at_risk"
    SEGMENT_CHANGED = "segment_changed"
    WIN_BACK = "win_back"
    MODEL_DRIFT = "model_drift"
    PURCHASE_ANOMALY = "purchase_anomaly"
    CROSS_SELL = "cross_sell"
    SERVICE_ESCALATION = "service_escalation"
    VALUE_GROUP_CHANGED = "value_group_changed"


class Severity(StrEnum):
    """How urgently someone should look at an alert."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Alert(OutputModel):
    """Something worth acting on; consumers deduplicate on ``idempotency_key``.

    Every alert type except ``model_drift`` is about one customer and needs ``customer_id``.
    ``contactable`` says whether marketing may contact that customer (no unsubscribe or consent
    withdrawal since the last consent given, :mod:`scorers.consent`); marketing actions
    (``win_back``, ``cross_sell``) for a customer who is not contactable are not published
    unless a setting asks for them.
    """

    schema_version: Literal[1] = 1
    alert_type: AlertType
    severity: Severity
    customer_id: CustomerId | None = None
    event_time: UtcDatetime = Field(description="Event time that raised the alert.")
    idempotency_key: str = Field(min_length=1, description="rule + customer + episode")
    scores: dict[str, float | int | str | None] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    contactable: bool = Field(
        default=True,
        description="Whether marketing may contact the customer (false after an unsubscribe or "
        "a consent withdrawal, until a later consent_given); true for alerts about no customer.",
    )

    @model_validator(mode="after")
    def _customer_alerts_name_a_customer(self) -> Self:
        if self.customer_id is None and self.alert_type is not AlertType.MODEL_DRIFT:
            raise ValueError(f"a {self.alert_type.value} alert needs a customer_id")
        return self


# --- training examples --------------------------------------------------------------------------
class TrainingExample(OutputModel):
    """A labelled example for the churn learner (``crm.training``).

    ``features`` were built from the customer's profile as of ``snapshot_at`` (event time);
    ``label`` is 1 when no purchase followed within ``horizon_days`` of it (resolved when the
    watermark passed ``snapshot_at + horizon``), 0 when one did (resolved by that purchase).
    The learner deduplicates on ``idempotency_key`` (customer + snapshot time).
    """

    schema_version: Literal[1] = 1
    customer_id: CustomerId
    snapshot_at: UtcDatetime
    resolved_at: UtcDatetime = Field(description="Event time at which the label became known.")
    horizon_days: float = Field(gt=0)
    label: Literal[0, 1]
    features: dict[str, float]
    idempotency_key: str = Field(min_length=1, description="churn + customer + snapshot time")


# --- customer data rights -----------------------------------------------------------------------
class CustomerErased(OutputModel):
    """A customer was erased (``crm.erasures``, a compacted topic keyed by the customer id): a
    downstream tool that holds the customer's data should delete it too."""

    schema_version: Literal[1] = 1
    customer_id: CustomerId
    erased_at: UtcDatetime = Field(description="When the erasure was requested (wall clock).")
