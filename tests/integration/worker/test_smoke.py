"""Smoke test: real broker -> a Faust agent -> real Redis, read back by the test."""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from crm_core.settings import Settings

pytestmark = pytest.mark.integration


async def test_faust_agent_writes_what_it_consumed_to_redis(
    isolated_settings: Settings, redis_client: aioredis.Redis
) -> None:
    settings = isolated_settings
    worker = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tests.integration.worker.smoke_app", "worker", "-l", "warn"],
        "--without-web",
        env=settings.subprocess_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for i in range(30):
            event = {"customer_id": f"c-{i % 3}", "event_id": f"e-{i}"}
            await producer.send(
                settings.topic("smoke"), orjson.dumps(event), key=event["customer_id"].encode()
            )
        await producer.flush()

        deadline = time.monotonic() + 90
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = {}
            for cid in ("c-0", "c-1", "c-2"):
                raw = await redis_client.hget(
                    f"{settings.redis_key_prefix}:{{{cid}}}:smoke", "events"
                )
                counts[cid] = int(raw or 0)
            if sum(counts.values()) >= 30 or worker.returncode is not None:
                break
            await asyncio.sleep(0.5)
    finally:
        await producer.stop()
        worker.terminate()
        output = (await asyncio.wait_for(worker.communicate(), 30))[0].decode(errors="replace")
    assert counts == {"c-0": 10, "c-1": 10, "c-2": 10}, output[-3000:]
