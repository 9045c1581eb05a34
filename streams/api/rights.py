"""Customer data rights: erasing a customer, for ``crm-score erase`` and ``DELETE
/api/customers/{id}``.

An erasure runs in this order, so it is safe while workers run:

1. the suppression record (:mod:`streams.state.erasure`): every worker re-reads the records
   each second and from then on skips the customer's events (counted, reason ``erased``, not
   dead-lettered) and timers; so do ``crm-score rebuild`` and a replay;
2. the customer's keys and index entries are deleted;
3. after ``CRM_ERASE_FENCE_SECONDS`` (5), when the rounds a worker had in flight before it saw
   the record are saved, they are deleted again (what those rounds wrote is gone too);
4. ``customer_erased`` is published on the compacted topic ``crm.erasures`` (keyed by the id)
   for downstream tools, and an audit entry records who erased and when, naming the customer
   only by its suppression tag.

Erasing an erased customer runs the same steps and finds nothing left to delete.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from crm_core.settings import Settings
from schemas import CustomerErased
from streams.api.audit import AuditLog
from streams.api.policy import Principal
from streams.state.erasure import CustomerEraser, ErasureReport
from streams.state.keys import Layout

__all__ = ["ERASURES_TOPIC", "erase_customer", "erased_path"]

#: The logical name of the topic ``customer_erased`` messages go to.
ERASURES_TOPIC = "erasures"


def erased_path(tag: str) -> str:
    """How the audit trail names an erased customer: by its suppression tag, not its id."""
    return f"erased:{tag[:32]}"


async def erase_customer(
    settings: Settings,
    client: aioredis.Redis,
    customer_id: str,
    at: datetime,
    principal: Principal | None,
    method: str = "CLI",
) -> ErasureReport:
    """Erase ``customer_id`` (see the module doc); the report counts both deletions."""
    eraser = CustomerEraser(client, settings)
    first = await eraser.erase(customer_id, at)
    await asyncio.sleep(settings.erase_fence_seconds)
    keys, entries = await eraser.remove(customer_id)
    report = ErasureReport(
        first.tag,
        at,
        first.first,
        first.keys_deleted + keys,
        first.entries_removed + entries,
    )
    await publish_erasure(settings, CustomerErased(customer_id=customer_id, erased_at=at))
    alias = erased_path(report.tag)
    audit = AuditLog(client, Layout(settings.redis_key_prefix), settings.api_audit_maxlen)
    await audit.record(principal, method, f"/api/customers/{alias}", alias, "allowed", 200)
    return report


async def publish_erasure(settings: Settings, message: CustomerErased) -> None:
    """Send ``message`` to ``crm.erasures`` (created compacted when missing), keyed by the id."""
    topic = settings.topic(ERASURES_TOPIC)
    common = {"bootstrap_servers": settings.kafka_bootstrap, **settings.kafka_client_options()}
    admin = AIOKafkaAdminClient(**common)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            topic,
                            settings.partitions,
                            settings.replication_factor,
                            topic_configs={"cleanup.policy": "compact"},
                        )
                    ]
                )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**common, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, message.to_json_bytes(), key=message.customer_id.encode()
        )
    finally:
        await producer.stop()
