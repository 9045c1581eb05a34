"""The smallest real pipeline: a Faust agent consumes a topic and counts events in Redis.

Run as a worker by the smoke test: ``python -m tests.integration.worker.smoke_app worker``;
topic and key prefix come from ``CRM_TOPIC_PREFIX`` / ``CRM_REDIS_KEY_PREFIX``, so each test is
isolated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import faust
import orjson
import redis.asyncio as aioredis

from crm_core.settings import get_settings
from streams.runtime.app import faust_settings

settings = get_settings()
app = faust.App(**faust_settings(settings, app_id=f"{settings.app_id}-smoke"))
topic = app.topic(settings.topic("smoke"), value_serializer="raw", key_serializer="raw")
redis_client = aioredis.Redis.from_url(settings.redis_url)


@app.agent(topic)
async def count_events(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
    """Count each customer's events in a Redis hash."""
    async for value in stream:
        event = orjson.loads(value)
        key = f"{settings.redis_key_prefix}:{{{event['customer_id']}}}:smoke"
        await redis_client.hincrby(key, "events", 1)
        yield None


if __name__ == "__main__":
    app.main()
