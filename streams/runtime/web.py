"""HTTP endpoints served by the worker's Faust web server: ``/metrics`` and ``/health``."""

from __future__ import annotations

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.ingest.service import IngestService
from streams.learner.service import LearnerService

__all__ = ["register_pages"]


def register_pages(
    app: faust.App, ingest: IngestService, learner: LearnerService | None = None
) -> None:
    """Add the worker's pages to ``app``."""

    @app.page("/metrics")
    async def metrics(self: View, request: Request) -> Response:
        # aiohttp wants the charset apart from the media type
        media_type = CONTENT_TYPE_LATEST.split(";", 1)[0]
        return self.bytes(generate_latest(ingest.metrics.registry), content_type=media_type)

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        report = await ingest.health()
        if learner is not None:  # a standby learner (leader=False) is healthy too
            report["learner"] = await learner.health()
        return self.json(report, status=200 if report["ok"] else 503)
