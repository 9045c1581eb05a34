"""Create the input and output topics at start-up, and refuse a partition-count mismatch."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from crm_core.errors import ConfigError
from crm_core.settings import INPUT_KINDS, Settings

__all__ = ["OUTPUT_TOPICS", "all_topics", "ensure_topics", "min_insync_replicas"]

#: Logical names of what the pipeline publishes.
OUTPUT_TOPICS: tuple[str, ...] = ("deadletter", "scores", "alerts", "training")


#: Input records carry the broker's append time, which bounds how far one event may move the
#: watermark (streams.reorder): a producer's own clock cannot.
_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


def all_topics(settings: Settings) -> list[str]:
    """Every topic crm-scoring reads or writes, full names."""
    return [settings.topic(name) for name in (*INPUT_KINDS, *OUTPUT_TOPICS)]


async def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics with ``settings.partitions`` (input topics stamped with the
    broker's append time); the names created.

    Raises ConfigError when an existing input/output topic has another partition count: per-key
    ordering and the partition-local state would silently break.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_client_options()
    )
    await admin.start()
    try:
        wanted = all_topics(settings)
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            inputs = set(settings.input_topics)
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(
                    [NewTopic(name, settings.partitions, settings.replication_factor,
                              topic_configs={**_topic_configs(settings),
                                             **(_APPEND_TIME if name in inputs else {})})
                     for name in missing]
                )  # fmt: skip
        present = [name for name in wanted if name in existing]
        if present:
            for description in await admin.describe_topics(present):
                count = len(description["partitions"])
                if count != settings.partitions:
                    raise ConfigError(
                        f"topic {description['topic']} has {count} partitions but "
                        f"CRM_PARTITIONS={settings.partitions}; set CRM_PARTITIONS={count} or "
                        "recreate the topic (all input and output topics must match)"
                    )
        return missing
    finally:
        await admin.close()


def min_insync_replicas(replication: int) -> int:
    """A majority of the replicas (3 -> 2): with the producers' ``acks=all`` an acknowledged
    record is on two brokers, and one broker may be lost while writes continue."""
    return replication // 2 + 1 if replication > 2 else 1


def _topic_configs(settings: Settings) -> dict[str, str]:
    return {"min.insync.replicas": str(min_insync_replicas(settings.replication_factor))}
