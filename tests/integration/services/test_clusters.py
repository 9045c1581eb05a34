"""`crm-score services up --redis-cluster 3 / --kafka-brokers 3` on free ports, then `down`.

The shared single-node servers (CRM_* defaults) are never touched: every port here is free.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from redis.cluster import RedisCluster

from crm_core.settings import Settings
from crm_score.services import LocalKafkaCluster, LocalRedisCluster
from streams.ingest.topics import ensure_topics
from tests.integration.harness import free_port_run
from tests.integration.private_services import three_brokers

pytestmark = pytest.mark.integration


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm_score", "services", *args],
        env=settings.subprocess_env(
            CRM_SERVICES_DIR=str(settings.services_dir),
            CRM_REDIS_CLUSTER_PORT=str(settings.redis_cluster_port),
            CRM_KAFKA_CONTROLLER_PORT=str(settings.kafka_controller_port),
            CRM_KAFKA_HEAP=settings.kafka_heap,
        ),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture
def cluster_settings(base_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    settings = three_brokers(
        base_settings,
        tmp_path / "services",
        redis_cluster_port=free_port_run(3, bus=True),
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
    )
    yield settings
    LocalKafkaCluster(settings).down()  # a failed test leaves nothing running
    LocalRedisCluster(settings).down()


def test_both_clusters_come_up_serve_and_go_down(cluster_settings: Settings) -> None:
    """One `up` of both (the costly part, ~1 min on 2 cores), checked, then one `down`."""
    cluster = LocalRedisCluster(cluster_settings)
    kafka = LocalKafkaCluster(cluster_settings)
    up = _cli(cluster_settings, "up", "--redis-cluster", "3", "--kafka-brokers", "3")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"CRM_REDIS_URL={cluster.url}" in up.stdout
    assert "started 3 broker(s)" in up.stdout
    assert all(cluster.process(port).pid() is not None for port in cluster.ports)
    assert all(node.process.pid() is not None for node in kafka.nodes())
    _redis_cluster_round_trip(cluster)
    asyncio.run(_replicated_round_trip(cluster_settings))
    again = _cli(cluster_settings, "up", "--redis-cluster", "3", "--kafka-brokers", "3")
    assert "redis cluster already running" in again.stdout, again.stdout + again.stderr
    assert "kafka 3.9.2 cluster already running" in again.stdout
    down = _cli(cluster_settings, "down")
    assert "redis cluster stopped (3 node(s))" in down.stdout, down.stdout + down.stderr
    assert "kafka cluster stopped (3 broker(s))" in down.stdout
    assert all(cluster.process(port).pid() is None for port in cluster.ports)
    assert all(node.process.pid() is None for node in kafka.nodes())
    for port in cluster.ports:
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=port, socket_connect_timeout=1).ping()


def _redis_cluster_round_trip(cluster: LocalRedisCluster) -> None:
    client = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    keys = [f"crm:{{c-{i}}}:p" for i in range(64)]
    try:
        for key in keys:
            client.set(key, key)
        assert [client.get(key) for key in keys] == [key.encode() for key in keys]
    finally:
        client.close()
    per_node = []
    for port in cluster.ports:
        node = redis.Redis(port=port)
        try:
            per_node.append(node.dbsize())
            assert node.info("persistence")["aof_enabled"] == 1
        finally:
            node.close()
    assert sum(per_node) == len(keys)
    assert min(per_node) > 0  # the hash tags spread customers over every master


async def _replicated_round_trip(settings: Settings) -> None:
    created = await ensure_topics(settings)
    events = settings.topic("purchase")
    assert events in created
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        for _ in range(50):  # a new topic's metadata reaches every broker shortly after
            (description,) = await admin.describe_topics([events])
            if description["partitions"]:
                break
            await asyncio.sleep(0.2)
        assert {len(p["replicas"]) for p in description["partitions"]} == {3}
        entries: dict[str, str] = {}
        for _ in range(50):  # the broker asked may not know the topic yet: empty, ask again
            resource = ConfigResource(ConfigResourceType.TOPIC, events)
            configs = await admin.describe_configs([resource])
            entries = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
            if entries:
                break
            await asyncio.sleep(0.2)
        assert entries["min.insync.replicas"] == "2"
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = [await producer.send_and_wait(events, f"e{i}".encode(), key=b"c") for i in range(5)]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        events, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        values: list[bytes | None] = []
        for _ in range(20):
            got = await consumer.getmany(timeout_ms=1000)
            values += [record.value for records in got.values() for record in records]
            if len(values) >= 5:
                break
    finally:
        await consumer.stop()
    assert values == [f"e{i}".encode() for i in range(5)]
    assert len({(meta.partition, meta.offset) for meta in sent}) == 5
