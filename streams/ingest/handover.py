"""Partitions moving between workers: which partitions a round may still write, the part of
a round to drop when one moved, and what the previous owner left unpublished.

A rebalance can land at any await of the ingest loop. The ingest service holds
:attr:`PartitionOwnership.lock` around due-index pops, saves and publishing, and the
revocation hook takes it too, so once the hook ran the old owner neither pops a revoked
partition's timers nor saves its customers. A round whose events were released before a
partition's revocation is stale there even when the partition comes back to the same worker
(the eager protocol revokes everything): the next owner restores the parked timers and reads
the journaled, uncommitted events again, so it redoes that part from the last saved state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from functools import partial
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer

from crm_core.settings import Settings
from streams.ingest.kafka_io import publish
from streams.round.messages import Applied, OutputMessage
from streams.round.scorer import CustomerBefore, ScoredRound
from streams.state.recovery import RoundRecovery
from streams.state.round_store import RoundStore

__all__ = ["PartitionOwnership", "drop_revoked", "publish_left_over"]

log = logging.getLogger(__name__)
T = TypeVar("T")
Retrying = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]


class PartitionOwnership:
    """The lock a worker's pops, saves and revocations share, and the count of revocations
    that tells a stale round from a current one."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.generation = 0  # revocations so far
        self._revoked_at: dict[int, int] = {}  # partition -> the count at its last revocation

    def revoked(self, partitions: Collection[int]) -> None:
        """``partitions`` were revoked (call it holding :attr:`lock`)."""
        self.generation += 1
        self._revoked_at.update(dict.fromkeys(partitions, self.generation))

    def current(self, generation: int, assigned: Collection[int]) -> set[int]:
        """Of the ``assigned`` partitions, those not revoked since a round released its
        events at ``generation``."""
        return {p for p in assigned if generation >= self._revoked_at.get(p, 0)}


def drop_revoked(
    scored: ScoredRound,
    applied: list[Applied],
    before: Mapping[str, CustomerBefore],
    owned: Collection[int],
    recovery: RoundRecovery,
) -> tuple[ScoredRound, list[Applied]]:
    """The round without the customers of partitions it may no longer write: their events
    stay journaled and uncommitted, their popped timers parked, their alerts unclaimed."""
    partition_of = {c: known.partition for c, known in before.items()}
    recovery.forget({c for c, p in partition_of.items() if p not in owned})
    log.info("dropped the part of a finishing round on revoked partitions")
    kept = [a for a in applied if a.record.partition in owned]
    return scored.only(owned, partition_of), kept


async def publish_left_over(
    rounds: RoundStore,
    producer: AIOKafkaProducer,
    settings: Settings,
    partitions: Collection[int],
    again: Mapping[int, list[tuple[str, str, bytes]]],
    retrying: Retrying,
) -> None:
    """Publish what a previous owner of ``partitions`` saved but never had acknowledged:
    ``again``, the unconfirmed alerts :meth:`RoundStore.recover` found, and the outputs of
    the output outbox (deleted once Kafka acknowledged them)."""
    for partition, alerts in again.items():
        messages = [OutputMessage(partition, c.encode(), value) for c, _, value in alerts]
        sent = await publish(producer, settings.topic("alerts"), messages)
        rounds.recovery.published(sent, [(partition, c, k) for c, k, _ in alerts])
        log.info("published %d unconfirmed alerts of partition %d again", len(alerts), partition)
    unsent = await retrying(lambda: rounds.unsent_outputs(partitions))
    for by_topic, drops in unsent:
        sent = []
        for name, messages in by_topic.items():
            sent += await publish(producer, settings.topic(name), messages)
        await asyncio.gather(*sent)  # acknowledged: then they may go
        await retrying(partial(rounds.run, drops))
        counts = {name: len(messages) for name, messages in by_topic.items()}
        log.info("published unacknowledged outputs again: %s", counts)
