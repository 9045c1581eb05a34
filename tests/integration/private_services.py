"""Servers of a test's own, on free ports with their own data directory (the shared Kafka and
Redis are never touched): settings that point at them, and a Kafka + Redis pair a test may
restart or wipe. Whatever starts them stops exactly those (PID files)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from crm_core.settings import Settings
from crm_score.services import LocalKafka, LocalRedis, free_port
from tests.integration.harness import free_port_run


def private_settings(base: Settings, root: Path, **update: Any) -> Settings:
    """``base`` with its services under ``root`` (created; Kafka's downloaded jars linked from
    the shared services directory, so nothing is fetched twice) and ``update`` on top."""
    root.mkdir(parents=True, exist_ok=True)
    shared_cache = base.services_dir / "cache"
    if shared_cache.exists() and not (root / "cache").exists():
        (root / "cache").symlink_to(shared_cache)
    return base.model_copy(update={"services_dir": root, **update})


def three_brokers(base: Settings, root: Path, **update: Any) -> Settings:
    """:func:`private_settings` for a KRaft cluster of three brokers on free ports, topics
    replicated three times (``min.insync.replicas`` 2)."""
    brokers = free_port_run(3, bus=False)
    return private_settings(
        base,
        root,
        kafka_bootstrap=",".join(f"127.0.0.1:{brokers + i}" for i in range(3)),
        kafka_controller_port=free_port_run(3, bus=False),
        kafka_heap="384m",
        replication_factor=3,
        **update,
    )


class PrivateServices:
    """A Kafka broker and a Redis server of the test's own, on free ports, with their own data
    directory: a test may restart or wipe them. Stops exactly what it started (PID files)."""

    def __init__(self, base: Settings, root: Path) -> None:
        self.settings = private_settings(
            base,
            root,
            kafka_bootstrap=f"127.0.0.1:{free_port()}",
            kafka_controller_port=free_port(),
            redis_url=f"redis://127.0.0.1:{free_port()}/0",
            kafka_heap="512m",
        )
        self.kafka = LocalKafka(self.settings)
        self.redis = LocalRedis(self.settings)

    def up(self) -> None:
        self.redis.up()
        self.kafka.up()

    def down(self) -> None:
        self.kafka.down()
        self.redis.down()

    async def restart_kafka(self) -> float:
        """Stop the broker (SIGTERM) and start it again; seconds it was away."""
        return await _restart(self.kafka.down, self.kafka.up)

    async def restart_redis(self) -> float:
        """Stop Redis (SIGTERM: AOF flushed) and start it again from its AOF."""
        return await _restart(self.redis.down, self.redis.up)

    async def wipe_redis(self) -> None:
        """Stop Redis, delete its data (AOF and RDB), start it empty."""
        await asyncio.to_thread(self.redis.down)
        data = self.redis.home / "data"
        if data.exists():
            shutil.rmtree(data)
        await asyncio.to_thread(self.redis.up)


async def _restart(down: Any, up: Any) -> float:
    start = time.monotonic()
    await asyncio.to_thread(down)
    await asyncio.to_thread(up)
    return time.monotonic() - start
