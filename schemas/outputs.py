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
    "Alert",
    "AlertType",
    "DeadLetter",
    "OutputModel",
    "ScoreSnapshot",
    "Severity",
    "TrainingExample",
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
class DeadLetter(OutputModel):
    """An input message that could not be used, with where it came from and why."""

    schema_version: Literal[1] = 1
    reason: DeadLetterReason
    message: str = Field(description="What was wrong and where (field path).")
    source_topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key_b64: str | None = Field(default=None, description="Original key, base64; null if none.")
    value_b64: str = Field(default="", description="Original value bytes, base64; '' if none.")
    value_size: int = Field(default=0, ge=0, description="Length of the original value, bytes.")
    value_truncated: bool = Field(
        default=False,
        description="True when value_b64 holds only the first bytes (the original was too big "
        "to fit in a Kafka message once encoded); value_sha256 identifies the whole value.",
    )
    value_sha256: str | None = Field(default=None, description="SHA-256 of the whole value.")
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
        max_value_bytes: int = 256 * 1024,
    ) -> DeadLetter:
        """Build the dead letter for a message that parsing rejected with ``error``.

        Values over ``max_value_bytes`` keep only their first bytes (base64 grows them by a
        third, and a dead letter must still fit in one Kafka message).
        """
        original = value or b""
        kept = original[:max_value_bytes]
        return cls(
            reason=DeadLetterReason(error.reason),
            message=error.message,
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key_b64=None if key is None else base64.b64encode(key).decode("ascii"),
            value_b64=base64.b64encode(kept).decode("ascii"),
            value_size=len(original),
            value_truncated=len(kept) < len(original),
            value_sha256=hashlib.sha256(original).hexdigest(),
            broker_timestamp_ms=broker_timestamp_ms,
            detected_at=detected_at,
        )

    def original_key(self) -> bytes | None:
        """The original message key, decoded from base64."""
        return None if self.key_b64 is None else base64.b64decode(self.key_b64)

    def original_value(self) -> bytes:
        """The original message value bytes (``b""`` for a missing value)."""
        return base64.b64decode(self.value_b64)


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
