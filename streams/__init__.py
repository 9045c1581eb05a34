"""The streaming side, one subpackage per concern (``docs/ARCHITECTURE.md`` draws the tree).

Import what you need from its module (``from streams.state.profiles import RedisProfileStore``);
this package re-exports the pieces a deployment or an embedding application uses.
"""

from streams.ingest import IngestService
from streams.learner.service import LearnerService
from streams.models.population import refresh_rfm_boundaries
from streams.models.registry import ModelRegistry, fit_and_publish
from streams.pipeline import PipelineProcessor
from streams.reorder import EventClock
from streams.rounds import RoundStore
from streams.runtime.learner_worker import build_learner_worker, run_learner
from streams.runtime.worker import build_worker, run_worker
from streams.scoring import RoundScorer
from streams.state.due_index import DueIndex
from streams.state.profiles import RedisProfileStore, connect_redis

__all__ = [
    "DueIndex",
    "EventClock",
    "IngestService",
    "LearnerService",
    "ModelRegistry",
    "PipelineProcessor",
    "RedisProfileStore",
    "RoundScorer",
    "RoundStore",
    "build_learner_worker",
    "build_worker",
    "connect_redis",
    "fit_and_publish",
    "refresh_rfm_boundaries",
    "run_learner",
    "run_worker",
]
