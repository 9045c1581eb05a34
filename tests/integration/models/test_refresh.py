"""The scheduled population refresh: one worker per interval refits as of its watermark."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from crm_core.settings import Settings
from streams.models.population import RFM_BOUNDARIES, current_rfm_boundaries
from streams.models.refresh import lock_key, refresh_once, refresh_periodically
from streams.models.registry import PROBABILITY_MODEL, ModelRegistry, current_probability_model
from tests.integration.harness import write_profiles
from tests.populations import AS_OF, simulate

pytestmark = pytest.mark.integration


async def test_one_refresh_per_lock_and_versions_as_of_the_watermark(
    isolated_settings: Settings, redis_client: aioredis.Redis, prefix: str
) -> None:
    await write_profiles(redis_client, prefix, simulate(400, seed=3))
    registry = ModelRegistry(redis_client, prefix)

    first = await refresh_once(isolated_settings, redis_client, AS_OF, lock_seconds=60)
    second = await refresh_once(isolated_settings, redis_client, AS_OF, lock_seconds=60)
    model = await current_probability_model(registry)
    boundaries = await current_rfm_boundaries(registry)

    assert (first, second) == (True, False)  # the lock holds for the interval
    assert await registry.current_version(PROBABILITY_MODEL) == 1
    assert await registry.current_version(RFM_BOUNDARIES) == 1
    assert model is not None and model.fitted_at == AS_OF and model.high_value_clv is not None
    assert boundaries is not None and boundaries.as_of == AS_OF
    await redis_client.delete(lock_key(isolated_settings))
    assert await refresh_once(isolated_settings, redis_client, AS_OF, lock_seconds=60)
    assert await registry.current_version(PROBABILITY_MODEL) == 2


async def test_too_few_customers_is_skipped_not_raised(
    isolated_settings: Settings, redis_client: aioredis.Redis, prefix: str
) -> None:
    await write_profiles(redis_client, prefix, simulate(3, seed=1))
    assert not await refresh_once(isolated_settings, redis_client, AS_OF, lock_seconds=60)
    assert await ModelRegistry(redis_client, prefix).current_version(PROBABILITY_MODEL) is None


async def test_the_schedule_refreshes_in_live_mode_only(
    isolated_settings: Settings, redis_client: aioredis.Redis, prefix: str
) -> None:
    await write_profiles(redis_client, prefix, simulate(400, seed=4))
    registry = ModelRegistry(redis_client, prefix)
    for mode, expected in (("replay", None), ("live", 1)):
        settings = isolated_settings.model_copy(
            update={"clock_mode": mode, "population_refresh_seconds": 0.2}
        )
        stop = asyncio.Event()
        task = asyncio.ensure_future(
            refresh_periodically(settings, redis_client, AS_OF.timestamp, stop)
        )
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert await registry.current_version(PROBABILITY_MODEL) == expected, mode
