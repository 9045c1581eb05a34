"""Hot-path encoders: the bytes of an output model without building the model.

Constructing and serialising a pydantic model costs a few microseconds an event; these write the
same JSON with orjson. ``tests/unit/schemas/test_fast.py`` guards that what they write validates
as the model and equals the model's own serialisation.
"""

from __future__ import annotations

from datetime import datetime

import orjson

__all__ = ["encode_score_snapshot", "encode_training_example"]

_OPTIONS = orjson.OPT_UTC_Z


def encode_score_snapshot(
    *,
    customer_id: str,
    as_of: datetime,
    trigger: str,
    event_id: str | None,
    recency_days: float | None,
    frequency: int,
    monetary_minor: int,
    r_score: int | None = None,
    f_score: int | None = None,
    m_score: int | None = None,
    segment: str | None = None,
    p_alive: float | None = None,
    expected_purchases_30d: float | None = None,
    expected_purchases_90d: float | None = None,
    clv: float | None = None,
    next_purchase_at: datetime | None = None,
    probability_model_version: str | None = None,
    churn_probability: float | None = None,
    churn_model_version: str | None = None,
    reasons: list[str] | None = None,
    value_group: str | None = None,
    cluster: int | None = None,
) -> bytes:
    """A :class:`schemas.ScoreSnapshot` with RFM, segment, probability and churn fields."""
    return orjson.dumps(
        {
            "schema_version": 1,
            "customer_id": customer_id,
            "as_of": as_of,
            "trigger": trigger,
            "event_id": event_id,
            "recency_days": recency_days,
            "frequency": frequency,
            "monetary_minor": monetary_minor,
            "r_score": r_score,
            "f_score": f_score,
            "m_score": m_score,
            "segment": segment,
            "p_alive": p_alive,
            "expected_purchases_30d": expected_purchases_30d,
            "expected_purchases_90d": expected_purchases_90d,
            "clv": clv,
            "next_purchase_at": next_purchase_at,
            "probability_model_version": probability_model_version,
            "churn_probability": churn_probability,
            "churn_model_version": churn_model_version,
            "reasons": [] if reasons is None else reasons,
            "value_group": value_group,
            "cluster": cluster,
        },
        option=_OPTIONS,
    )


def encode_training_example(
    *,
    customer_id: str,
    snapshot_at: datetime,
    resolved_at: datetime,
    horizon_days: float,
    label: int,
    features: dict[str, float],
    idempotency_key: str,
) -> bytes:
    """A :class:`schemas.TrainingExample` (``crm.training``)."""
    return orjson.dumps(
        {
            "schema_version": 1,
            "customer_id": customer_id,
            "snapshot_at": snapshot_at,
            "resolved_at": resolved_at,
            "horizon_days": horizon_days,
            "label": label,
            "features": features,
            "idempotency_key": idempotency_key,
        },
        option=_OPTIONS,
    )
