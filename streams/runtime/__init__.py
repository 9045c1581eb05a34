"""The processes: the Faust app, the worker (ingest, learner and query API beside it), the
learner-only worker, and the ``/health`` and ``/metrics`` pages they serve.
"""

from streams.runtime.app import create_app
from streams.runtime.learner_worker import build_learner_worker, run_learner
from streams.runtime.worker import build_worker, run_worker

__all__ = ["build_learner_worker", "build_worker", "create_app", "run_learner", "run_worker"]
