"""``crm-score rebuild``: rebuild every customer's state in Redis by replaying the input topics.

Redis is the state of record, but the topics keep the whole history (docs/ARCHITECTURE.md,
decision 1), so the state can always be derived again. A rebuild runs the worker's own ingest
pipeline over the input topics from their first offsets, in a consumer group of its own (the
live group's committed offsets are left alone), in replay clock mode up to ``until``: the same
reorder buffer, the same apply script, the same walk of every customer's events and silences.
So it reaches what a worker that had read the same history reaches:

- profiles and dedup records (every aggregate commutes; offsets and ids are recorded again);
- alert states and the alert idempotency keys already fired (claimed as published: a rebuild
  publishes nothing to ``crm.scores``, ``crm.alerts``, ``crm.training`` or ``crm.deadletter``,
  since all of it was published the first time);
- the due-index (each customer's next due time after ``until``) and the partitions'
  watermarks (``until``): a live worker started afterwards carries on from there, and events it
  re-reads from its own group's offsets are recognised as applied.

Not derivable from the input topics, and so neither deleted nor rebuilt: the model registry
(probability models, RFM boundaries, churn versions) and the learner's checkpoint. Scores and
alerts depend on the model versions, so publish the same versions before rebuilding a wiped
Redis (the rebuild warns when none is published).

The rebuild refuses to run over existing profiles under the key prefix: wipe them (or use a new
``CRM_REDIS_KEY_PREFIX``) first, as events already applied would be skipped, not walked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tqdm import tqdm

from crm_core.errors import CrmScoringError
from crm_core.settings import Settings
from streams.ingest.lag import group_lag, ingest_group
from streams.ingest.service import IngestService
from streams.models.registry import PROBABILITY_MODEL, ModelRegistry
from streams.state.keys import Layout
from streams.state.profiles import connect_redis

__all__ = ["RebuildError", "RebuildReport", "rebuild_state"]


class RebuildError(CrmScoringError):
    """The rebuild cannot run (or did not finish); the message says what to do."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild read and did."""

    messages: int
    applied: int
    duplicates: int
    dead_letters: int
    until: datetime
    seconds: float
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "dead_letters": self.dead_letters,
            "until": self.until.isoformat(),
            "seconds": round(self.seconds, 2),
            "events_per_second": round(self.messages / self.seconds) if self.seconds else None,
            "warnings": list(self.warnings),
        }


async def rebuild_state(
    settings: Settings,
    *,
    until: datetime | None = None,
    progress: bool = True,
    give_up_after: float | None = None,
) -> RebuildReport:
    """Replay the input topics from the start into the (empty) Redis state; see module doc.

    ``until`` is where the replay's clock ends (default: now); ``progress`` shows a tqdm bar
    of messages read out of the topics' total on stderr.
    """
    end = (until or datetime.now(UTC)).astimezone(UTC)
    warnings = await _check_redis(settings)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run = settings.model_copy(
        update={
            "app_id": f"{settings.app_id}-rebuild-{stamp}",
            "clock_mode": "replay",
            "replay_until": end,
            "population_refresh_seconds": 0.0,
        }
    )
    total = await _message_count(run)
    service = IngestService(run)
    service.publishing = False
    started = time.monotonic()
    bar = tqdm(total=total, unit="msg", desc="rebuild", disable=not progress, smoothing=0.1)
    try:
        await service.start()
        shown = 0
        while True:
            await asyncio.sleep(0.5)
            bar.update(service.stats.consumed - shown)
            shown = service.stats.consumed
            if service.crashed:
                raise RebuildError(f"the rebuild's pipeline failed: {service.crash_reason!r}")
            if shown >= total:
                lag = await group_lag(run, ingest_group(run), run.input_topics)
                if not any(lag.values()):
                    break  # every input message read, applied and committed
            if give_up_after is not None and time.monotonic() - started > give_up_after:
                raise RebuildError(f"the rebuild did not finish within {give_up_after:.0f} s")
    finally:
        bar.close()
        await service.stop()
        await _delete_group(run)
    stats = service.stats
    return RebuildReport(
        messages=stats.consumed,
        applied=stats.applied,
        duplicates=stats.duplicates,
        dead_letters=sum(stats.dead_letters.values()),
        until=end,
        seconds=time.monotonic() - started,
        warnings=tuple(warnings),
    )


async def _check_redis(settings: Settings) -> list[str]:
    """Refuse over existing profiles; warn when no probability model is published."""
    client = connect_redis(settings)
    prefix = settings.redis_key_prefix
    try:
        async for _ in client.scan_iter(match=Layout(prefix).profile_pattern(), count=10_000):
            raise RebuildError(
                f"profiles exist under the key prefix {prefix!r}: a rebuild replays into empty "
                "state (events already applied would be skipped). Delete the prefix's keys, "
                "or rebuild under a new CRM_REDIS_KEY_PREFIX."
            )
        registry = ModelRegistry(client, prefix)
        if await registry.current(PROBABILITY_MODEL) is None:
            return [
                "no probability model is published: scores and alerts that need one are left "
                "out; publish the versions the live run used first (crm-score fit)"
            ]
        return []
    finally:
        await client.aclose()


async def _message_count(settings: Settings) -> int:
    """Messages in the input topics now (end minus beginning offsets)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        **settings.kafka_client_options(),
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in settings.input_topics
            for p in sorted(consumer.partitions_for_topic(topic) or range(settings.partitions))
        ]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()


async def _delete_group(settings: Settings) -> None:
    """The rebuild's consumer group is of no use afterwards."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_client_options()
    )
    with contextlib.suppress(Exception):
        await admin.start()
        await admin.delete_consumer_groups([ingest_group(settings)])
    with contextlib.suppress(Exception):
        await admin.close()
