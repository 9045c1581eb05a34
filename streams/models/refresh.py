"""Keep the population statistics current: refit them on a schedule, and follow the versions.

Every ``population_refresh_seconds`` one worker (whichever takes a Redis lock first) refits both
from the stored profiles, as of its event-time watermark rather than the wall clock, and
publishes them as new versions; every worker hot-swaps to them within seconds. Replay mode never
refreshes: a replay scores against the versions published for it, so it stays repeatable.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crm_core.errors import ModelError, StateStoreError
from crm_core.settings import Settings
from scorers.churn_model import ChurnScorer
from scorers.churn_scoring import ChurnModelRef, ChurnScoring
from scorers.clusters import ClusterAssigner
from scorers.timeline import Timeline
from streams.models.population import RFM_BOUNDARIES, current_rfm_boundaries, fit_population
from streams.models.registry import (
    CHURN_MODEL,
    CLUSTERS_MODEL,
    PROBABILITY_MODEL,
    ModelRegistry,
    current_probability_model,
)
from streams.state.keys import Layout

__all__ = ["ModelFollower", "lock_key", "refresh_once", "refresh_periodically"]

log = logging.getLogger(__name__)


def lock_key(settings: Settings) -> str:
    """The lock that makes one worker per interval do the refresh."""
    return Layout(settings.redis_key_prefix).lock("population")


async def refresh_once(
    settings: Settings, client: aioredis.Redis, as_of: datetime, *, lock_seconds: float
) -> bool:
    """Refit and publish as of ``as_of`` if this worker gets the lock; whether it did.

    Too few customers to fit is not an error here: it is logged and tried next time.
    """
    token = uuid.uuid4().hex
    if not await client.set(lock_key(settings), token, nx=True, ex=max(1, int(lock_seconds))):
        return False
    try:
        model, boundaries = await fit_population(settings, client, as_of=as_of)
    except ModelError as exc:
        log.info("population refresh skipped: %s", exc)
        return False
    log.info(
        "refreshed population as of %s: model v%s, RFM boundaries v%s",
        as_of.isoformat(),
        model.version,
        boundaries.version,
    )
    return True


async def refresh_periodically(
    settings: Settings,
    client: aioredis.Redis,
    low_watermark: Callable[[], float | None],
    stop: asyncio.Event,
) -> None:
    """Until ``stop`` is set: every interval, :func:`refresh_once` as of ``low_watermark()``
    (epoch seconds; skipped while it is None). Does nothing in replay mode or when the
    interval is 0."""
    interval = settings.population_refresh_seconds
    if settings.clock_mode == "replay" or interval <= 0:
        return
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
            return
        except TimeoutError:
            pass
        watermark = low_watermark()
        if watermark is None:
            continue
        try:
            as_of = datetime.fromtimestamp(watermark, UTC)
            await refresh_once(settings, client, as_of, lock_seconds=interval * 0.9)
        except (RedisError, OSError, StateStoreError) as exc:
            log.warning("population refresh failed (%r); trying again next interval", exc)


class ModelFollower:
    """Keeps a timeline on the newest published probability model and RFM boundaries, and the
    churn scoring on the newest churn model the learner published."""

    def __init__(
        self, registry: ModelRegistry, timeline: Timeline, churn: ChurnScoring | None = None
    ) -> None:
        self._registry = registry
        self._timeline = timeline
        self._churn = churn
        #: Versions the timeline scores with (None before the first publish).
        self.model_version: int | None = None
        self.boundaries_version: int | None = None
        self.churn_version: int | None = None
        self.clusters_version: int | None = None

    def versions(self) -> dict[str, int | None]:
        """The versions scored with, for ``/health``."""
        return {
            "probability_model_version": self.model_version,
            "churn_model_version": self.churn_version,
            "clusters_version": self.clusters_version,
            "rfm_boundaries_version": self.boundaries_version,
        }

    async def follow(self) -> None:
        """Hot-swap to newer versions, if any; a failure keeps the current ones."""
        registry = self._registry
        try:
            version = await registry.current_version(PROBABILITY_MODEL)
            if version is not None and version != self.model_version:
                self._timeline.model = await current_probability_model(registry)
                self.model_version = version
                log.info("scoring with probability model version %s", version)
            version = await registry.current_version(RFM_BOUNDARIES)
            if version is not None and version != self.boundaries_version:
                self._timeline.boundaries = await current_rfm_boundaries(registry)
                self.boundaries_version = version
                log.info("scoring RFM against boundaries version %s", version)
            if self._churn is not None:
                version = await registry.current_version(CHURN_MODEL)
                if version is not None and version != self.churn_version:
                    found = await registry.get(CHURN_MODEL, version)
                    if found is not None:
                        scorer = ChurnScorer.from_bytes(found.payload)
                        self._churn.model = ChurnModelRef(str(version), scorer)
                        self.churn_version = version
                        log.info(
                            "scoring churn with model version %s (%d examples)",
                            version,
                            scorer.n_examples,
                        )
                version = await registry.current_version(CLUSTERS_MODEL)
                if version is not None and version != self.clusters_version:
                    found = await registry.get(CLUSTERS_MODEL, version)
                    if found is not None:
                        self._churn.clusters = ClusterAssigner.from_bytes(found.payload)
                        self.clusters_version = version
        except (RedisError, OSError, ModelError, ValueError) as exc:
            log.warning("could not load a published model (%r); keeping the current one", exc)
