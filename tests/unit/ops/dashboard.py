"""What the Grafana dashboard may query: the compose checks and the metric checks share it."""

from __future__ import annotations

#: The metric names the worker exports (histograms are queried through their ``_bucket`` series).
DOCUMENTED_METRICS = frozenset(
    {
        "crm_events_total",
        "crm_deadletters_total",
        "crm_duplicates_skipped_total",
        "crm_alerts_total",
        "crm_event_to_score_seconds_bucket",
        "crm_ingest_to_alert_seconds_bucket",
        "crm_consumer_lag",
        "crm_watermark_delay_seconds",
        "crm_due_backlog",
        "crm_model_version",
        "crm_churn_prequential_auc",
        "crm_churn_prequential_log_loss",
        "crm_model_drift_detections_total",
        "crm_redis_roundtrip_seconds_bucket",
        "crm_segment_customers",
        "crm_api_request_seconds_bucket",
        "crm_api_audit_entries_total",
    }
)
