"""The streaming side, one subpackage per concern (``docs/ARCHITECTURE.md`` draws the tree).

Import what you need from its module (``from streams.state.profiles import RedisProfileStore``);
this package re-exports the pieces a deployment or an embedding application uses.
"""

from streams.ingest.clock import EventClock
from streams.ingest.records import PipelineProcessor
from streams.ingest.service import IngestService
from streams.learner.service import LearnerService
from streams.models.population import refresh_rfm_boundaries
from streams.models.registry import ModelRegistry, fit_and_publish
from streams.round.scorer import RoundScorer
from streams.runtime.learner_worker import build_learner_worker, run_learner
from streams.runtime.worker import build_worker, run_worker
from streams.state.due_index import DueIndex
from streams.state.profiles import RedisProfileStore, connect_redis
from streams.state.round_store import RoundStore

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
