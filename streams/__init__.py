"""The streaming side, one subpackage per concern (``docs/ARCHITECTURE.md`` draws the tree).

Import what you need from its module (``from streams.state.profiles import RedisProfileStore``);
this package re-exports the pieces a deployment or an embedding application uses. The
re-exports load on first use, so importing the pure round (``streams.round``) does not load
Faust, aiokafka, redis or aiohttp.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
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

#: Each re-exported name and the module it comes from.
_LAZY = {
    "DueIndex": "streams.state.due_index",
    "EventClock": "streams.ingest.clock",
    "IngestService": "streams.ingest.service",
    "LearnerService": "streams.learner.service",
    "ModelRegistry": "streams.models.registry",
    "PipelineProcessor": "streams.ingest.records",
    "RedisProfileStore": "streams.state.profiles",
    "RoundScorer": "streams.round.scorer",
    "RoundStore": "streams.state.round_store",
    "build_learner_worker": "streams.runtime.learner_worker",
    "build_worker": "streams.runtime.worker",
    "connect_redis": "streams.state.profiles",
    "fit_and_publish": "streams.models.registry",
    "refresh_rfm_boundaries": "streams.models.population",
    "run_learner": "streams.runtime.learner_worker",
    "run_worker": "streams.runtime.worker",
}

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


def __getattr__(name: str) -> _typing.Any:
    """Load a re-exported name from its module on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'streams' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
