"""Settings: env vars, secrets never shown, Faust defaults that bite set safely."""

from __future__ import annotations

import pytest

from crm_core.settings import Settings
from streams.runtime.app import faust_settings


def test_env_vars_configure_and_secrets_stay_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_REDIS_PASSWORD", "hunter2")
    monkeypatch.setenv("CRM_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("CRM_PARTITIONS", "8")
    settings = Settings()
    assert settings.partitions == 8
    shown = f"{settings!r} {settings.masked_dump()}"
    assert "hunter2" not in shown and "s3cret" not in shown
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "hunter2"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.partitions = 2  # type: ignore[misc]


def test_sasl_options_pass_through_to_kafka_clients() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
    )
    assert settings.kafka_client_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "pw",
    }


def test_faust_defaults_that_bite_are_set_safely() -> None:
    options = faust_settings(Settings(partitions=6))
    assert options["web_bind"] == "127.0.0.1"
    assert options["topic_partitions"] == 6
    assert options["broker_session_timeout"] <= 10
    assert options["broker_heartbeat_interval"] <= 1


def test_topic_names_follow_the_prefix() -> None:
    settings = Settings(topic_prefix="shop1.")
    assert settings.input_topics == ("shop1.purchase", "shop1.service", "shop1.marketing")
    assert settings.topic("deadletter") == "shop1.deadletter"
