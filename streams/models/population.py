"""Population statistics shared by every worker: RFM quintile boundaries, versioned in Redis.

``refresh_rfm_boundaries`` sketches every stored profile's RFM as of one time (KLL, so memory
stays small) and publishes the cut points as a numbered version, like the probability model.
Workers score R, F and M against the version they last loaded; replays read published versions,
so replay and live score against the same boundaries (the sketch itself is randomised).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import redis.asyncio as aioredis

from crm_core.errors import ModelError
from crm_core.settings import Settings
from scorers.probability import ProbabilityModel
from scorers.profile import Profile
from scorers.quintiles import QuintileSketch, RfmBoundaries
from scorers.rfm import rfm
from streams.models.registry import ModelRegistry, fit_and_publish, scan_profiles

__all__ = [
    "RFM_BOUNDARIES",
    "current_rfm_boundaries",
    "fit_population",
    "refresh_rfm_boundaries",
]

#: Registry name of the RFM quintile boundaries.
RFM_BOUNDARIES = "rfm"


async def fit_population(
    settings: Settings,
    client: aioredis.Redis,
    *,
    as_of: datetime | None = None,
    profiles: Sequence[Profile] | None = None,
) -> tuple[ProbabilityModel, RfmBoundaries]:
    """Read every stored profile once (or take ``profiles``, e.g. from an event file); fit
    and publish the probability model and the RFM boundaries, both as of the same time
    (default now)."""
    moment = (as_of or datetime.now(UTC)).astimezone(UTC)
    if profiles is None:
        profiles = [p async for p in scan_profiles(client, settings.redis_key_prefix)]
    model = await fit_and_publish(settings, client, as_of=moment, profiles=profiles)
    boundaries = await refresh_rfm_boundaries(settings, client, as_of=moment, profiles=profiles)
    return model, boundaries


async def refresh_rfm_boundaries(
    settings: Settings,
    client: aioredis.Redis,
    *,
    as_of: datetime | None = None,
    profiles: Iterable[Profile] | None = None,
) -> RfmBoundaries:
    """Sketch the stored profiles' RFM at ``as_of`` (default now) and publish the boundaries.

    ``profiles`` already read are used instead of scanning Redis again. Raises ModelError when
    no stored customer has ordered yet.
    """
    moment = (as_of or datetime.now(UTC)).astimezone(UTC)
    sketch = QuintileSketch()
    if profiles is None:
        profiles = [p async for p in scan_profiles(client, settings.redis_key_prefix)]
    for profile in profiles:
        sketch.update(rfm(profile, moment))
    if sketch.n == 0:
        raise ModelError("no stored customer has ordered yet: ingest events, then run the fit")
    registry = ModelRegistry(client, settings.redis_key_prefix)
    version = await registry.reserve_version(RFM_BOUNDARIES)
    boundaries = sketch.boundaries(version, moment)
    metadata = {"as_of": moment.isoformat(), "customers": sketch.n, "rank_error": sketch.rank_error}
    await registry.publish(
        RFM_BOUNDARIES, boundaries.model_dump_json().encode(), metadata, version=version
    )
    return boundaries


async def current_rfm_boundaries(registry: ModelRegistry) -> RfmBoundaries | None:
    """The newest published boundaries, or None before the first fit."""
    found = await registry.current(RFM_BOUNDARIES)
    return None if found is None else RfmBoundaries.model_validate_json(found.payload)
