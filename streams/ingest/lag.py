"""How far the ingest consumer group is behind the input topics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from crm_core.settings import Settings

__all__ = ["group_lag", "ingest_group", "ingest_lag"]

_T = TypeVar("_T")


def ingest_group(settings: Settings) -> str:
    """The consumer group the ingest service commits its offsets in."""
    return f"{settings.app_id}.ingest"


async def ingest_lag(settings: Settings) -> dict[TopicPartition, int]:
    """Uncommitted messages per input partition (end offset − committed offset)."""
    return await group_lag(settings, ingest_group(settings), settings.input_topics)


async def group_lag(
    settings: Settings, group: str, topics: tuple[str, ...] | list[str]
) -> dict[TopicPartition, int]:
    """Uncommitted messages of consumer ``group`` per partition of ``topics``."""
    options = {"bootstrap_servers": settings.kafka_bootstrap, **settings.kafka_client_options()}
    admin = AIOKafkaAdminClient(**options)
    probe = AIOKafkaConsumer(**options, enable_auto_commit=False)
    await admin.start()
    await probe.start()
    try:
        existing = set(await admin.list_topics())
        described = await admin.describe_topics([t for t in settings.input_topics if t in existing])
        partitions = [
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        ]
        if not partitions:
            return {}
        ends = await probe.end_offsets(partitions)
        committed = await _retrying(lambda: admin.list_consumer_group_offsets(group))
        return {
            tp: ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in partitions
        }
    finally:
        await probe.stop()
        await admin.close()


async def _retrying(call: Callable[[], Awaitable[_T]], attempts: int = 40) -> _T:
    """Retry retriable broker errors, e.g. no group coordinator yet on a fresh broker."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except KafkaError as exc:
            if not exc.retriable:
                raise
            await asyncio.sleep(0.25)
    return await call()
