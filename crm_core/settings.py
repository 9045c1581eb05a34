"""One frozen settings object, read from ``CRM_*`` environment variables (and ``.env``).

Examples
--------
>>> s = Settings(redis_password="hunter2")
>>> s.topic("purchase")
'crm.purchase'
>>> "hunter2" in repr(s.masked_dump())
False
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["INPUT_KINDS", "Settings", "get_settings"]

#: The three input streams, in the order their topics are created and consumed.
INPUT_KINDS: tuple[str, ...] = ("purchase", "service", "marketing")

_REPO_ROOT = Path(__file__).resolve().parent.parent
#: What a child process must share with its parent to work on the same data.
_NAMESPACE_FIELDS = (
    "kafka_bootstrap", "redis_url", "topic_prefix", "redis_key_prefix", "app_id", "partitions",
    "clock_mode", "allowed_lateness_seconds", "idle_advance_seconds", "replay_until",
)  # fmt: skip


class Settings(BaseSettings):
    """Everything configurable about a crm-scoring deployment.

    Secrets are ``SecretStr`` and never appear in ``repr`` or :meth:`masked_dump`.
    """

    model_config = SettingsConfigDict(
        env_prefix="CRM_", env_file=".env", frozen=True, extra="ignore"
    )

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    # --- topics ------------------------------------------------------------------------------
    topic_prefix: str = "crm."
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    # --- Redis -------------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: SecretStr | None = None
    redis_key_prefix: str = "crm"
    redis_timeout_seconds: float = Field(default=10.0, gt=0)  # one reply, or one connect

    # --- the worker --------------------------------------------------------------------------
    app_id: str = "crm-scoring"
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    batch_max_records: int = Field(default=2000, ge=1)
    batch_timeout_ms: int = Field(default=50, ge=1)
    dedup_window_days: float = Field(default=30.0, gt=0)
    max_event_bytes: int = Field(default=64 * 1024, ge=256)
    deadletter_quarantine_maxlen: int = Field(default=1000, ge=1)  # refused dead letters kept
    max_future_skew_seconds: float = Field(default=300.0, ge=0)
    base_currency: str = "USD"
    fx_rates: dict[str, float] = Field(default_factory=lambda: {"USD": 1.0})

    # --- event time, timers and alerts --------------------------------------------------------
    clock_mode: Literal["live", "replay"] = "live"
    allowed_lateness_seconds: float = Field(default=60.0, ge=0)
    # How far an event's time may run ahead of its record's broker append time and still move
    # the watermark (input topics with message.timestamp.type=LogAppendTime): one producer's
    # fast clock cannot make everyone else's events late. Above the allowed lateness, a clock
    # that far ahead makes events sent just after it late again.
    watermark_max_lead_seconds: float = Field(default=0.0, ge=0)
    idle_advance_seconds: float = Field(default=5.0, ge=0)
    replay_until: AwareDatetime | None = None
    reorder_buffer_max: int = Field(default=200_000, ge=1)
    p_alive_alert_threshold: float = Field(default=0.3, gt=0, lt=1)
    high_value_top_fraction: float = Field(default=0.2, gt=0, lt=1)
    #: The model P(alive), expected purchases and CLV come from (BG/NBD is fitted as well):
    #: pareto_nbd predicted CDNOW's holdout best; mbgnbd is cheaper to fit; bgnbd gives a
    #: one-time buyer P(alive) 1 however long their silence.
    dropout_model: Literal["pareto_nbd", "mbgnbd", "bgnbd"] = "pareto_nbd"
    win_back_after_days: float = Field(default=90.0, gt=0)
    # Publish win-back and cross-sell alerts for customers who unsubscribed or withdrew consent
    # (scorers/consent.py); off: they are not published, the other alerts say contactable=false.
    marketing_alerts_when_not_contactable: bool = False

    # --- customer data rights (streams/state/erasure.py, streams/state/pii.py) -------------
    # production: a worker refuses to start without CRM_PII_KEYS; dev: contact stored plain.
    environment: Literal["dev", "production"] = "dev"
    # Keys of the contact details' encryption at rest, "id:base64,id:base64" (32 bytes each):
    # the first encrypts, all decrypt (rotate: put a new one first, `crm-score rotate-pii-key`).
    pii_keys: SecretStr | None = None
    erasure_key: SecretStr | None = None  # HMAC key of the erased ids' suppression records
    # An erasure deletes again after this long, when rounds in flight at its start are done.
    erase_fence_seconds: float = Field(default=5.0, ge=0)
    # Off (None): data is kept. Else a customer with no event for this many days, in event
    # time, is removed, without a suppression record (scorers/retention.py).
    retention_days: float | None = Field(default=None, gt=0)
    population_refresh_seconds: float = Field(default=3600.0, ge=0)

    # --- the churn model (labels, learner, scoring) -------------------------------------------
    churn_horizon_days: float = Field(default=90.0, gt=0)
    churn_sample_days: float = Field(default=30.0, gt=0)
    churn_sample_max_silence_days: float = Field(default=180.0, gt=0)
    churn_min_examples: int = Field(default=200, ge=1)
    churn_alert_threshold: float = Field(default=0.7, gt=0, lt=1)
    churn_alert_reset: float = Field(default=0.5, gt=0, lt=1)
    churn_model_kind: Literal["logistic", "hoeffding"] = "logistic"
    escalation_complaints: float = Field(default=2.0, gt=0)
    escalation_sentiment: float = Field(default=-0.3, ge=-1, le=0)
    value_group_churn_threshold: float = Field(default=0.5, gt=0, lt=1)
    value_group_high_clv: float | None = Field(default=None, ge=0)
    learner_enabled: bool = True
    learner_publish_every: int = Field(default=1000, ge=1)
    learner_publish_seconds: float = Field(default=30.0, gt=0)
    learner_metrics_window: int = Field(default=2000, ge=10)

    # --- cross-sell rules (scorers/cross_sell.py, streams/state/cross_sell_counts.py) ------
    cross_sell_enabled: bool = True
    cross_sell_min_confidence: float = Field(default=0.5, gt=0, le=1)
    cross_sell_min_lift: float = Field(default=1.1, gt=0)
    cross_sell_min_count: float = Field(default=20.0, ge=0)  # customers (decayed) with both
    cross_sell_half_life_days: float = Field(default=180.0, gt=0)  # inf: counts never fade
    cross_sell_max_categories: int = Field(default=64, ge=1)  # per customer
    cross_sell_max_partners: int = Field(default=32, ge=1)  # per category (rows hold up to 2x)
    cross_sell_dedup_keep: int = Field(default=20_000, ge=1000)  # order ids kept for redos

    # --- purchase anomalies (scorers/anomaly.py) -----------------------------------------------
    anomaly_enabled: bool = True
    anomaly_quantile: float = Field(default=0.9999, gt=0.5, lt=1)  # alert past the customer's own
    anomaly_min_orders: int = Field(default=3, ge=1)  # orders before anything is scored
    anomaly_amount_tau_days: float = Field(default=365.0, gt=0)  # decay of the amount statistics

    # --- the query API and ops page (streams/api) ---------------------------------------------
    api_enabled: bool = True  # serve /api/* and /ops from the worker's web server
    api_departments_file: Path | None = None  # YAML department tree; None: the packaged one
    api_recent_alerts: int = Field(default=10_000, ge=100)  # recent alerts kept in Redis
    api_audit_maxlen: int = Field(default=1_000_000, ge=0)  # audit entries kept; 0: all
    api_key_cache_seconds: float = Field(default=5.0, ge=0)  # a revoked key works this long
    api_auth_failures_per_minute: int = Field(default=60, ge=1)  # per address, then 429

    # --- Faust tuning (defaults that bite are set safely) -------------------------------------
    broker_session_timeout: float = 10.0
    broker_heartbeat_interval: float = 1.0
    broker_commit_interval: float = 1.0
    kafka_metadata_max_age_seconds: float = Field(default=5.0, gt=0)  # topic changes seen

    # --- local services (crm-score services ...) ---------------------------------------------
    services_dir: Path = _REPO_ROOT / ".services"
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_heap: str = "1g"
    redis_cluster_port: int = Field(default=7000, ge=1, le=55535)  # `services up --redis-cluster`

    @model_validator(mode="after")
    def _churn_hysteresis_is_a_band(self) -> Settings:
        if self.churn_alert_reset >= self.churn_alert_threshold:
            raise ValueError(
                f"CRM_CHURN_ALERT_RESET ({self.churn_alert_reset}) must be below "
                f"CRM_CHURN_ALERT_THRESHOLD ({self.churn_alert_threshold}), or alerts would flap"
            )
        return self

    def topic(self, name: str) -> str:
        """Full topic name for a logical name such as ``purchase`` or ``deadletter``."""
        return f"{self.topic_prefix}{name}"

    @property
    def input_topics(self) -> tuple[str, ...]:
        """The purchase, service and marketing topics, in that order."""
        return tuple(self.topic(kind) for kind in INPUT_KINDS)

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options for aiokafka clients, passed through unchanged."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
                certfile=str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None,
                keyfile=str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
            )
        return options

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        """This process's environment plus the ``CRM_*`` variables that make a child process
        (e.g. a worker) use the same broker, Redis and namespace as these settings, and every
        other field set on this object to a value the environment does not give
        (``model_copy(update=...)``: a test's session or reply timeout reaches its worker)."""
        env = dict(os.environ)
        inherited = type(self)()  # what the child would read from the environment alone
        changed = [n for n in sorted(self.model_fields_set)
                   if getattr(self, n) != getattr(inherited, n)]  # fmt: skip
        for name in dict.fromkeys((*_NAMESPACE_FIELDS, *changed)):
            value = getattr(self, name)
            if value is None:
                env.pop(f"CRM_{name.upper()}", None)
            else:
                env[f"CRM_{name.upper()}"] = self._env_text(name, value)
        return {**env, **extra}

    def _env_text(self, name: str, value: object) -> str:
        """``value`` of field ``name`` as its environment variable spells it."""
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, str | Path | int | float):
            return str(value)
        return json.dumps(self.model_dump(mode="json", include={name})[name])

    def masked_dump(self) -> dict[str, Any]:
        """Settings as a dict, secrets replaced by ``'**********'`` (safe to log)."""
        return self.model_dump(mode="json")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
