"""Run the churn learner on its own: a Faust worker with just :class:`LearnerService`, serving
``/health`` and ``/metrics`` (``crm-score learner``)."""

from __future__ import annotations

import faust
from prometheus_client import REGISTRY

from crm_core.settings import Settings
from streams.ingest.metrics import LearnerMetrics
from streams.learner.service import LearnerService
from streams.runtime.app import create_app
from streams.runtime.web import serve_pages

__all__ = ["build_learner_worker", "register_learner_pages", "run_learner"]


def register_learner_pages(app: faust.App, learner: LearnerService) -> None:
    """``/metrics`` and ``/health`` of a learner-only worker."""
    serve_pages(app, learner.metrics.registry, learner.health)


def build_learner_worker(
    settings: Settings, *, loglevel: str = "info", lock_ttl: float = 10.0
) -> faust.Worker:
    """A Faust worker whose only service is the learner (its app id gets ``-learner``, so it
    never joins the scoring workers' group)."""
    app = create_app(settings.model_copy(update={"app_id": f"{settings.app_id}-learner"}))
    learner = LearnerService(settings, metrics=LearnerMetrics(REGISTRY), lock_ttl=lock_ttl)
    register_learner_pages(app, learner)
    return faust.Worker(app, learner, loglevel=loglevel, redirect_stdouts=False)


def run_learner(settings: Settings, *, loglevel: str = "info", lock_ttl: float = 10.0) -> None:
    """Run until SIGINT/SIGTERM; the learner checkpoints and publishes what it learned first."""
    build_learner_worker(settings, loglevel=loglevel, lock_ttl=lock_ttl).execute_from_commandline()
