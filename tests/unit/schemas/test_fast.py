"""The hot-path encoders write exactly what the models would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import given
from hypothesis import strategies as st

from schemas import ScoreSnapshot, TrainingExample
from schemas.fast import encode_score_snapshot, encode_training_example

_LOW, _HIGH = datetime(2000, 1, 1), datetime(2100, 1, 1)  # noqa: DTZ001 - hypothesis: naive bounds
moments = st.datetimes(_LOW, _HIGH, timezones=st.just(UTC)) | st.just(
    datetime(2026, 1, 5, 9, tzinfo=timezone(timedelta(hours=2))).astimezone(UTC)
)


@given(
    customer_id=st.from_regex(r"[A-Za-z0-9_.:@\-]{1,20}", fullmatch=True),
    as_of=moments,
    trigger=st.sampled_from(["event", "timer"]),
    event_id=st.none() | st.text(min_size=1, max_size=20),
    recency_days=st.none() | st.floats(0, 1e5, allow_nan=False),
    frequency=st.integers(0, 10**6),
    monetary_minor=st.integers(-(10**9), 10**12),
    r_score=st.none() | st.integers(1, 5),
    f_score=st.none() | st.integers(1, 5),
    m_score=st.none() | st.integers(1, 5),
    segment=st.none() | st.sampled_from(["Champions", "Can't Lose Them"]),
    p_alive=st.none() | st.floats(0, 1),
    expected_purchases_30d=st.none() | st.floats(0, 100),
    expected_purchases_90d=st.none() | st.floats(0, 300),
    clv=st.none() | st.floats(0, 1e9),
    next_purchase_at=st.none() | moments,
    probability_model_version=st.none() | st.from_regex(r"[0-9]{1,4}", fullmatch=True),
    churn_probability=st.none() | st.floats(0, 1),
    churn_model_version=st.none() | st.sampled_from(["7", "fallback:p_alive"]),
    reasons=st.none() | st.lists(st.text(max_size=30), max_size=3),
    value_group=st.none() | st.sampled_from(["high_value_at_risk", "no_value"]),
    cluster=st.none() | st.integers(0, 9),
)
def test_score_snapshot_encoder_equals_the_model(**fields: object) -> None:
    fast = encode_score_snapshot(**fields)  # type: ignore[arg-type]
    model = ScoreSnapshot(**{**fields, "reasons": fields["reasons"] or []})
    assert ScoreSnapshot.from_json_bytes(fast) == model
    assert orjson.loads(fast) == orjson.loads(model.to_json_bytes())


@given(
    customer_id=st.from_regex(r"[A-Za-z0-9_.:@\-]{1,20}", fullmatch=True),
    snapshot_at=moments,
    resolved_at=moments,
    horizon_days=st.floats(0.5, 400),
    label=st.sampled_from([0, 1]),
    features=st.dictionaries(
        st.sampled_from(["recency_days", "p_alive", "complaints_30d"]),
        st.floats(-1e6, 1e6, allow_nan=False),
    ),
)
def test_training_example_encoder_equals_the_model(**fields: object) -> None:
    fields["idempotency_key"] = "churn:c:1"
    fast = encode_training_example(**fields)  # type: ignore[arg-type]
    model = TrainingExample(**fields)
    assert TrainingExample.from_json_bytes(fast) == model
    assert orjson.loads(fast) == orjson.loads(model.to_json_bytes())
