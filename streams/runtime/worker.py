"""Run a crm-scoring worker: the Faust app with the ingest service (and the churn learner)
beside it."""

from __future__ import annotations

import gc
from typing import Any

import faust
from prometheus_client import REGISTRY

from crm_core.settings import Settings
from streams.ingest.metrics import LearnerMetrics, PipelineMetrics
from streams.ingest.service import IngestService
from streams.learner.service import LearnerService
from streams.runtime.app import create_app
from streams.runtime.web import register_pages

__all__ = ["build_worker", "run_worker"]


def build_worker(settings: Settings, *, loglevel: str = "info") -> faust.Worker:
    """A Faust worker whose services are :class:`IngestService` and, unless
    ``CRM_LEARNER_ENABLED=false``, :class:`LearnerService` (only the worker holding the learner
    lock learns; the others stand by)."""
    app = create_app(settings)
    ingest = IngestService(settings, metrics=PipelineMetrics(REGISTRY))
    services: list[Any] = [ingest]
    learner = None
    if settings.learner_enabled:
        learner = LearnerService(settings, metrics=LearnerMetrics(REGISTRY))
        services.append(learner)
    register_pages(app, ingest, learner)
    if settings.api_enabled:  # the query API and ops page, on Faust's aiohttp application
        from streams.api.server import faust_web_app, mount_api, worker_totals

        mount_api(faust_web_app(app), settings, totals=worker_totals(ingest.stats),
                  worker_health=ingest.health, registry=REGISTRY)  # fmt: skip
    return faust.Worker(app, *services, loglevel=loglevel, redirect_stdouts=False)


def run_worker(settings: Settings, *, loglevel: str = "info") -> None:
    """Run until SIGINT/SIGTERM; the ingest service commits what it finished before exiting."""
    worker = build_worker(settings, loglevel=loglevel)
    # Full collections over the long-lived objects (modules, models, reorder buffers) paused
    # rounds for 100-300 ms a few times a minute (bench/latency.py's per-second p99 at 1k
    # events/s: spikes of 200-320 ms, 56-60 ms without). Freeze what exists at start and
    # collect the young generation less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
    worker.execute_from_commandline()
