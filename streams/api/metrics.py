"""Prometheus metrics of the query API, grouped in one object built from an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["API_LATENCY_BUCKETS", "ApiMetrics"]

#: Seconds; the target is p99 < 10 ms for one customer.
API_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip


class ApiMetrics:
    """Request latency and outcomes, audit decisions, and customers per segment."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "crm_api_request_seconds",
            "Time to answer an API request, by route",
            ["route"],
            buckets=API_LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "crm_api_requests", "API requests, by route and status", ["route", "status"], registry=r
        )
        self.audited = Counter(
            "crm_api_audit_entries", "Audit entries written, by decision", ["decision"], registry=r
        )
        self.refused = Counter(
            "crm_api_refused_requests",
            "Requests refused: request line or headers too large, no valid key, rate-limited",
            ["reason"],
            registry=r,
        )
        self.segment_customers = Gauge(
            "crm_segment_customers",
            "Customers per RFM segment (all scopes)",
            ["segment"],
            registry=r,
        )

    def set_segments(self, counts: dict[str, int]) -> None:
        """Customers per segment, as the ops board last read them."""
        for segment, count in counts.items():
            self.segment_customers.labels(segment).set(count)
