"""Fixtures for tests against the real Kafka and Redis that `crm-score services up` starts.

Each test gets its own topic prefix, consumer group (app id) and Redis key prefix, so tests
never see each other's data.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from crm_core.settings import Settings
from crm_score.services import LocalRedisCluster
from streams.state.profiles import connect_redis
from tests.integration.harness import free_port_run

pytestmark = pytest.mark.integration


def _listening(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings of the running services; fails (not skips) when they are down."""
    settings = Settings()
    # The first node of a cluster URL (redis+cluster://h:p,h:p,...) stands for the cluster.
    redis_host_port = settings.redis_url.split("//", 1)[1].split("/", 1)[0].split(",")[0]
    redis_host_port = redis_host_port.rpartition("@")[2]
    for what, address in (("Kafka", settings.kafka_bootstrap), ("Redis", redis_host_port)):
        if not _listening(address):
            pytest.fail(
                f"{what} is not answering on {address}: start the services with "
                "`crm-score services up` (or run `make test`, which does)."
            )
    return settings


@pytest.fixture
def isolated_settings(base_settings: Settings) -> Settings:
    """Settings with a fresh topic prefix, app id (consumer group) and Redis key prefix."""
    tag = uuid.uuid4().hex[:10]
    return base_settings.model_copy(
        update={
            "topic_prefix": f"t{tag}.",
            "redis_key_prefix": f"t{tag}",
            "app_id": f"crm-test-{tag}",
            # Histories end near now: release them within a second of going idle.
            "allowed_lateness_seconds": 1.0,
            "idle_advance_seconds": 0.5,
        }
    )


@pytest.fixture(scope="session")
def redis_cluster(
    base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalRedisCluster]:
    """A private 3-master Redis Cluster on free ports for the session (stopped by PID)."""
    root: Path = tmp_path_factory.mktemp("redis-cluster")
    cluster = LocalRedisCluster(
        base_settings.model_copy(
            update={"services_dir": root, "redis_cluster_port": free_port_run(3, bus=True)}
        )
    )
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def cluster_settings(isolated_settings: Settings, redis_cluster: LocalRedisCluster) -> Settings:
    """:func:`isolated_settings` on the private Redis Cluster (``redis+cluster://...``)."""
    return isolated_settings.model_copy(update={"redis_url": redis_cluster.url})


@pytest.fixture(params=["one-redis", "redis-cluster"])
def state_settings(request: pytest.FixtureRequest, isolated_settings: Settings) -> Settings:
    """:func:`isolated_settings` on the shared Redis, then on the private Redis Cluster: for
    the tests of the state guarantees that must hold on both."""
    if request.param == "one-redis":
        return isolated_settings
    cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
    return isolated_settings.model_copy(update={"redis_url": cluster.url})


@pytest.fixture
async def redis_client(base_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """An asyncio Redis client for reading state back."""
    client = connect_redis(base_settings)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(isolated_settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """The test's key prefix; its keys are deleted afterwards."""
    yield isolated_settings.redis_key_prefix
    pattern = f"{isolated_settings.redis_key_prefix}:*"
    keys = [key async for key in redis_client.scan_iter(match=pattern, count=10_000)]
    if keys:
        await redis_client.delete(*keys)
