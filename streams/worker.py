"""Run a crm-scoring worker: the Faust app with the ingest service beside it."""

from __future__ import annotations

import faust
from prometheus_client import REGISTRY

from crm_score.settings import Settings
from streams.app import create_app
from streams.ingest import IngestService
from streams.metrics import PipelineMetrics
from streams.web import register_pages

__all__ = ["build_worker", "run_worker"]


def build_worker(settings: Settings, *, loglevel: str = "info") -> faust.Worker:
    """A Faust worker whose services include :class:`IngestService`."""
    app = create_app(settings)
    ingest = IngestService(settings, metrics=PipelineMetrics(REGISTRY))
    register_pages(app, ingest)
    return faust.Worker(app, ingest, loglevel=loglevel, redirect_stdouts=False)


def run_worker(settings: Settings, *, loglevel: str = "info") -> None:
    """Run until SIGINT/SIGTERM; the ingest service commits what it finished before exiting."""
    build_worker(settings, loglevel=loglevel).execute_from_commandline()
