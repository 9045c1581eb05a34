"""Create the input and output topics at start-up, refuse a partition-count mismatch, and set
the project's topic configs back on a topic that lost them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from crm_core.errors import ConfigError
from crm_core.settings import INPUT_KINDS, Settings

__all__ = [
    "OUTPUT_TOPICS",
    "all_topics",
    "ensure_topics",
    "min_insync_replicas",
    "repair_topic_configs",
]

log = logging.getLogger(__name__)

#: Logical names of what the pipeline publishes.
OUTPUT_TOPICS: tuple[str, ...] = ("deadletter", "scores", "alerts", "training")


#: Input records carry the broker's append time, which bounds how far one event may move the
#: watermark (streams.reorder): a producer's own clock cannot.
_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
#: DescribeConfigs' source of a config set on the topic itself (kept when repairing others).
_DYNAMIC_TOPIC_CONFIG = 1


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
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(
                    [NewTopic(name, settings.partitions, settings.replication_factor,
                              topic_configs=_topic_configs(settings, name))
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


async def repair_topic_configs(settings: Settings) -> list[str]:
    """Set the project's configs back on its topics where they differ; what was changed, as
    ``topic: name=value``, each logged at WARNING.

    A deleted topic is recreated by the broker's auto-create as soon as a client asks for it,
    with the broker's defaults: an input topic then stamps the producer's time (CreateTime)
    and a producer's fast clock could drag the watermark again (``streams.ingest.kafka_io``).
    The worker calls this after every partition assignment (a recreated topic causes one), so
    only what was produced before the repair carries producer times. The topic's other
    settings are kept. A failure is logged, not raised: the next assignment tries again.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_client_options()
    )
    try:
        async with asyncio.timeout(30):
            return await _repair(admin, settings)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("could not check the topics' configs (%r); tried again on assignment", exc)
        return []
    finally:
        await admin.close()


async def _repair(admin: AIOKafkaAdminClient, settings: Settings) -> list[str]:
    await admin.start()
    existing = set(await admin.list_topics())
    names = [name for name in all_topics(settings) if name in existing]
    if not names:
        return []
    described = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    repairs, changed = [], []
    for response in described:
        for error, _, _, name, entries in response.resources:
            if error or not entries:  # gone again, or not known to this broker yet
                continue
            current = {entry[0]: entry[1] for entry in entries}
            wanted = _topic_configs(settings, name)
            wrong = {key: v for key, v in wanted.items() if current.get(key) != v}
            if wrong:
                own = {e[0]: e[1] for e in entries if e[3] == _DYNAMIC_TOPIC_CONFIG}
                # AlterConfigs replaces the topic's own settings: send them along.
                configs = {**own, **wanted}
                repairs.append(ConfigResource(ConfigResourceType.TOPIC, name, configs=configs))
                changed += [f"{name}: {key}={value}" for key, value in wrong.items()]
    if repairs:
        for response in await admin.alter_configs(repairs):
            refused = [f"{name}: {message or code}"
                       for code, message, _, name in response.resources if code]  # fmt: skip
            if refused:
                raise KafkaError(f"AlterConfigs refused: {'; '.join(refused)}")
        log.warning(
            "topic configs set back to the project's (the topic was recreated with the "
            "broker's defaults?): %s",
            ", ".join(changed),
        )
    return changed


def _topic_configs(settings: Settings, name: str) -> dict[str, str]:
    configs = {"min.insync.replicas": str(min_insync_replicas(settings.replication_factor))}
    if name in settings.input_topics:
        configs |= _APPEND_TIME
    return configs
