"""An input topic deleted and recreated under a running worker (shared Kafka and Redis): the
worker must notice within seconds and consume the new topic, /health must never say caught up
while it does not consume it, and the new topic gets the project's configs back (recreated as
the broker's auto-create does, it stamps the producer's time instead of the broker's)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from crm_core.settings import Settings
from crm_score.event_files import FileMessage
from crm_score.produce import produce_messages
from schemas import example_event_dict
from streams.ingest.topics import ensure_topics
from tests.integration.harness import WorkerProcess

pytestmark = pytest.mark.integration
DETECTED_WITHIN = 60.0  # seconds; the client's default metadata age alone is 300


def _orders(customers: range) -> list[FileMessage]:
    out = []
    for i in customers:
        raw = example_event_dict("order_placed")
        raw.update(customer_id=f"c{i}", event_id=f"e{i}", event_time=datetime.now(UTC).isoformat())
        out.append(FileMessage("purchase", f"c{i}".encode(), orjson.dumps(raw), 0))
    return out


async def test_input_topic_deleted_and_recreated_is_consumed_again(
    isolated_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    # The broker's default partition count: with auto.create.topics.enable (as the project's
    # Kafka runs) a client asking for the deleted topic may recreate it before we do.
    settings = isolated_settings
    await ensure_topics(settings)
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    purchase = settings.topic("purchase")
    # Per poll: caught up, consuming the purchase topic, /health naming it as a problem.
    seen: list[tuple[bool, bool, bool]] = []

    async def watch() -> None:
        while True:
            with contextlib.suppress(OSError):
                _, health = await asyncio.to_thread(worker.health_status)
                assigned = health.get("assigned_partitions")
                consuming = isinstance(assigned, list) and any(
                    str(name).startswith(f"{purchase}:") for name in assigned
                )
                named = purchase in str(health.get("reason", ""))
                seen.append((health.get("caught_up") is True, consuming, named))
            await asyncio.sleep(0.2)

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    watcher: asyncio.Task[None] | None = None
    try:
        await worker.start()
        await worker.wait_ready()
        await produce_messages(settings, _orders(range(5)))
        await worker.wait_health(lambda h: h.get("applied") == 5, "the first orders")
        watcher = asyncio.create_task(watch())
        await admin.delete_topics([purchase])
        await worker.wait_status(
            lambda status, h: status == 503 and purchase in str(h.get("reason")),
            "/health did not say the purchase topic is gone",
            DETECTED_WITHIN,
        )
        # Recreated with the broker's defaults, as its auto-create does when a client asks for
        # the topic (which may happen first: then this finds it there).
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(purchase, settings.partitions, 1)])
        await produce_messages(settings, _orders(range(5, 10)))
        await worker.wait_health(
            lambda h: h.get("applied") == 10 and h.get("caught_up") is True,
            "the recreated topic was not consumed",
            DETECTED_WITHIN,
        )
        stamps = await _timestamp_type(admin, purchase)
    finally:
        if watcher is not None:
            watcher.cancel()
        await admin.close()
        await worker.stop()
    # The consumer's own metadata requests may recreate the topic (auto-create) before its
    # partitions are ever unassigned: then /health naming it is what shows the deletion.
    gone = [i for i, (_, consuming, named) in enumerate(seen) if named or not consuming]
    assert gone, "no poll of /health saw the deletion"
    wrong = [i for i, (caught_up, consuming, _) in enumerate(seen) if caught_up and not consuming]
    assert not wrong, f"/health said caught up without consuming {purchase} ({len(wrong)} polls)"
    assert stamps == "LogAppendTime", f"the recreated {purchase} stamps {stamps}"


async def _timestamp_type(admin: AIOKafkaAdminClient, topic: str) -> str:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    for _ in range(50):  # the broker asked may not know the topic's configs yet: ask again
        entries = (await admin.describe_configs([resource]))[0].resources[0][4]
        if entries:
            return str({entry[0]: entry[1] for entry in entries}["message.timestamp.type"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"the broker never described {topic}'s configs")
