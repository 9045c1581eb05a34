"""Every metric the Grafana dashboard queries is one the worker (pipeline, learner, API) exports."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.api.metrics import ApiMetrics
from streams.ingest.metrics import LearnerMetrics, PipelineMetrics
from tests.unit.ops.dashboard import DOCUMENTED_METRICS


def _exported() -> set[str]:
    registry = CollectorRegistry()
    PipelineMetrics(registry), LearnerMetrics(registry), ApiMetrics(registry)
    names = set()
    for family in registry.collect():
        suffix = {"counter": "_total", "histogram": "_bucket"}.get(family.type, "")
        names.add(family.name + suffix)
    return names


def test_every_dashboard_metric_is_exported() -> None:
    missing = DOCUMENTED_METRICS - _exported()
    assert not missing, missing


def test_the_issue_metrics_exist() -> None:
    wanted = {
        "crm_events_total", "crm_deadletters_total", "crm_duplicates_skipped_total",
        "crm_event_to_score_seconds_bucket", "crm_ingest_to_alert_seconds_bucket",
        "crm_alerts_total", "crm_consumer_lag", "crm_watermark_delay_seconds", "crm_due_backlog",
        "crm_model_version", "crm_churn_prequential_auc", "crm_churn_prequential_log_loss",
        "crm_model_drift_detections_total", "crm_redis_roundtrip_seconds_bucket",
    }  # fmt: skip
    assert not wanted - _exported()
