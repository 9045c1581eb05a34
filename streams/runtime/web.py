"""HTTP endpoints served by the worker's Faust web server: ``/metrics`` and ``/health``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.ingest.service import IngestService
from streams.learner.service import LearnerService

__all__ = ["register_pages", "serve_pages"]

HealthReport = Callable[[], Awaitable[dict[str, Any]]]


def serve_pages(app: faust.App, registry: CollectorRegistry, health: HealthReport) -> None:
    """``/metrics`` of ``registry`` and ``/health`` of ``health()`` (503 unless ``ok``)."""

    @app.page("/metrics")
    async def metrics_page(self: View, request: Request) -> Response:
        # aiohttp wants the charset apart from the media type
        media_type = CONTENT_TYPE_LATEST.split(";", 1)[0]
        return self.bytes(generate_latest(registry), content_type=media_type)

    @app.page("/health")
    async def health_page(self: View, request: Request) -> Response:
        report = await health()
        return self.json(report, status=200 if report["ok"] else 503)


def register_pages(
    app: faust.App, ingest: IngestService, learner: LearnerService | None = None
) -> None:
    """Add the worker's pages to ``app``: the ingest service's metrics and health, with the
    learner's health inside."""

    async def health() -> dict[str, Any]:
        report = await ingest.health()
        if learner is not None:  # a standby learner (leader=False) is healthy too
            report["learner"] = await learner.health()
        return report

    serve_pages(app, ingest.metrics.registry, health)
