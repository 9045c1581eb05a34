"""Output models: dead letters, score snapshots and alerts."""

from __future__ import annotations

import base64
import hashlib
import math
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from crm_core.errors import EventRejected
from schemas import (
    DEAD_LETTER_MAX_BYTES,
    Alert,
    AlertType,
    DeadLetter,
    DeadLetterReason,
    ScoreSnapshot,
    Severity,
    dead_letter_key,
)
from schemas.outputs import (
    DEAD_LETTER_KEY_BYTES,
    DEAD_LETTER_MESSAGE_CHARS,
    DEAD_LETTER_VALUE_BYTES,
)

AT = datetime(2026, 1, 5, 9, tzinfo=UTC)


def snapshot(**changes: object) -> ScoreSnapshot:
    fields: dict[str, object] = {
        "customer_id": "c-42",
        "as_of": AT,
        "trigger": "event",
        "event_id": "e-1",
        "recency_days": 3.5,
        "frequency": 4,
        "monetary_minor": 10_396,
    }
    return ScoreSnapshot.model_validate({**fields, **changes})


def test_dead_letter_keeps_the_original_bytes() -> None:
    value = b"\x00\xffnot json"
    letter = DeadLetter.from_rejection(
        EventRejected("not_json", "message is not valid JSON: expected value"),
        source_topic="crm.purchase",
        partition=3,
        offset=1234,
        key=b"c-42",
        value=value,
        detected_at=datetime(2026, 1, 5, 10, tzinfo=timezone(timedelta(hours=1))),
        broker_timestamp_ms=1_767_603_600_000,
    )
    assert letter.reason is DeadLetterReason.NOT_JSON
    assert letter.value_b64 == base64.b64encode(value).decode()
    assert (letter.original_key(), letter.original_value()) == (b"c-42", value)
    assert letter.detected_at == AT
    assert letter.detected_at.tzinfo is UTC
    document = orjson.loads(letter.to_json_bytes())
    assert document["schema_version"] == 2
    assert document["reason"] == "not_json"
    assert (letter.key_size, letter.key_truncated, letter.value_truncated) == (4, False, False)
    assert letter.key_sha256 == hashlib.sha256(b"c-42").hexdigest()
    assert document["detected_at"] == "2026-01-05T09:00:00Z"
    assert DeadLetter.from_json_bytes(letter.to_json_bytes()) == letter


def test_dead_letter_of_a_tombstone_without_key() -> None:
    letter = DeadLetter.from_rejection(
        EventRejected("empty_message", "message has no value"),
        source_topic="crm.service",
        partition=0,
        offset=0,
        key=None,
        value=None,
        detected_at=AT,
    )
    assert (letter.key_b64, letter.value_b64, letter.broker_timestamp_ms) == (None, "", None)
    assert (letter.key_size, letter.key_sha256, letter.key_truncated) == (None, None, False)
    assert (letter.original_key(), letter.original_value()) == (None, b"")


def test_a_dead_letter_fits_in_a_kafka_message_whatever_the_original() -> None:
    key, value = b"k" * 1_000_000, bytes(range(256)) * 4096  # both past the broker's 1 MB
    letter = DeadLetter.from_rejection(
        EventRejected("key_mismatch", "\x01" * 50_000),  # each escaped to six bytes
        source_topic="t" * 249,  # Kafka's longest topic name
        partition=2**31 - 1,
        offset=2**63 - 1,
        key=key,
        value=value,
        detected_at=AT,
        broker_timestamp_ms=2**63 - 1,
    )
    kafka_key, kafka_value = dead_letter_key(key), letter.to_json_bytes()
    assert kafka_key is not None
    assert len(kafka_key) + len(kafka_value) <= DEAD_LETTER_MAX_BYTES < 1_048_588 - 1024
    assert kafka_key == key[:DEAD_LETTER_KEY_BYTES] == letter.original_key()
    assert letter.original_value() == value[:DEAD_LETTER_VALUE_BYTES]
    assert (letter.key_size, letter.value_size) == (len(key), len(value))
    assert letter.key_truncated and letter.value_truncated
    assert letter.key_sha256 == hashlib.sha256(key).hexdigest()
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
    assert len(letter.message) == DEAD_LETTER_MESSAGE_CHARS
    assert DeadLetter.from_json_bytes(kafka_value) == letter


def test_snapshot_round_trips_and_has_optional_scores_unset() -> None:
    plain = snapshot()
    assert (plain.r_score, plain.p_alive, plain.churn_probability, plain.segment) == (None,) * 4
    assert plain.reasons == []
    assert ScoreSnapshot.from_json_bytes(plain.to_json_bytes()) == plain
    full = snapshot(
        trigger="timer",
        event_id=None,
        r_score=5,
        f_score=3,
        m_score=1,
        segment="champions",
        p_alive=0.93,
        expected_purchases_30d=0.4,
        expected_purchases_90d=1.1,
        clv=12_345.5,
        churn_probability=0.07,
        churn_model_version="v3",
        reasons=["recency_days", "complaints"],
    )
    assert ScoreSnapshot.from_json_bytes(full.to_json_bytes()) == full
    assert orjson.loads(full.to_json_bytes())["as_of"] == "2026-01-05T09:00:00Z"


@pytest.mark.parametrize(
    "changes",
    [
        {"r_score": 0},
        {"m_score": 6},
        {"p_alive": 1.5},
        {"churn_probability": -0.1},
        {"recency_days": -1.0},
        {"frequency": -1},
        {"clv": math.nan},
        {"recency_days": math.inf},
        {"trigger": "cron"},
        {"customer_id": "{c-42}"},
        {"as_of": datetime(2026, 1, 5, 9)},  # noqa: DTZ001 - naive on purpose
    ],
)
def test_snapshot_rejects_out_of_range_values(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        snapshot(**changes)


def test_outputs_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        snapshot().frequency = 5  # type: ignore[misc]


def alert(**changes: object) -> Alert:
    fields: dict[str, object] = {
        "alert_type": "churn_risk",
        "severity": "warning",
        "customer_id": "c-42",
        "event_time": AT,
        "idempotency_key": "churn_risk:c-42:1",
        "scores": {"churn_probability": 0.81, "frequency": 4, "segment": "at_risk", "clv": None},
        "reasons": ["recency_days"],
    }
    return Alert.model_validate({**fields, **changes})


def test_alert_round_trips_and_keeps_score_types() -> None:
    raised = alert(details={"threshold": 0.8, "window": [1, 2]})
    assert raised.alert_type is AlertType.CHURN_RISK
    assert raised.severity is Severity.WARNING
    again = Alert.from_json_bytes(raised.to_json_bytes())
    assert again == raised
    assert type(again.scores["frequency"]) is int
    assert type(again.scores["churn_probability"]) is float


def test_only_model_drift_alerts_may_have_no_customer() -> None:
    drift = alert(alert_type="model_drift", severity="critical", customer_id=None)
    assert drift.customer_id is None
    with pytest.raises(ValidationError, match="needs a customer_id"):
        alert(customer_id=None)


def test_alert_and_reason_enums_have_the_contract_values() -> None:
    assert {member.value for member in AlertType} == {
        "churn_risk",
        "high_value_at_risk",
        "segment_changed",
        "win_back",
        "model_drift",
        "purchase_anomaly",
        "cross_sell",
        "service_escalation",
        "value_group_changed",
    }
    assert [member.value for member in Severity] == ["info", "warning", "critical"]
    assert {
        "not_json",
        "not_an_object",
        "empty_message",
        "too_large",
        "schema_violation",
        "unknown_event_type",
        "wrong_topic",
        "negative_amount",
        "bad_currency",
        "unsupported_currency",
        "naive_timestamp",
        "event_time_in_future",
        "missing_customer_id",
        "bad_customer_id",
        "missing_event_id",
        "unsupported_schema_version",
    } <= {member.value for member in DeadLetterReason}
