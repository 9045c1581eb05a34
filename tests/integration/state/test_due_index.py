"""The due-index against the real Redis: order, limits, atomic pops, cost that follows the due."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from crm_core.errors import StateStoreError
from crm_core.settings import Settings
from streams.state.due_index import DueIndex

pytestmark = pytest.mark.integration

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, an event-time watermark
PARTITION = 3


@pytest.fixture
async def index(
    isolated_settings: Settings, redis_client: aioredis.Redis
) -> AsyncIterator[DueIndex]:
    """A due-index under the test's own key prefix; its keys are deleted afterwards."""
    due = DueIndex(redis_client, isolated_settings.redis_key_prefix)
    yield due
    await redis_client.delete(*(due.key(p) for p in range(8)))


def test_key_has_one_hash_tag_per_partition(redis_client: aioredis.Redis) -> None:
    assert DueIndex(redis_client, "crm").key(7) == "crm:{due:7}"


async def test_pop_returns_due_oldest_first_within_limit(index: DueIndex) -> None:
    await index.schedule(PARTITION, [("c", T0 - 10), ("a", T0 - 30), ("b", T0 - 20), ("z", T0 + 1)])
    assert await index.pop_due(PARTITION, T0, limit=2) == [("a", T0 - 30), ("b", T0 - 20)]
    assert await index.pop_due(PARTITION, T0, limit=2) == [("c", T0 - 10)]
    assert await index.pop_due(PARTITION, T0, limit=2) == []
    assert await index.size(PARTITION) == 1  # "z" is not due yet
    assert await index.pop_due(PARTITION, T0 + 1, limit=5) == [("z", T0 + 1)]  # inclusive


async def test_ties_pop_in_customer_id_order(index: DueIndex) -> None:
    await index.schedule(PARTITION, [(cid, T0) for cid in ("m", "b", "x", "a")])
    popped = await index.pop_due(PARTITION, T0, limit=10)
    assert [cid for cid, _ in popped] == ["a", "b", "m", "x"]


async def test_rescheduling_replaces_and_none_clears(index: DueIndex) -> None:
    await index.schedule(PARTITION, [("a", T0 - 5), ("b", T0 - 5), ("c", T0 - 5)])
    await index.schedule(PARTITION, [("a", T0 + 100), ("b", None), ("c", T0 - 7.25)])
    await index.schedule(PARTITION, [("a", T0 + 100)])  # idempotent
    await index.schedule(PARTITION, [("d", T0 - 1), ("d", None)])  # last entry wins
    assert await index.size(PARTITION) == 2
    assert await index.peek_next(PARTITION) == T0 - 7.25
    assert await index.pop_due(PARTITION, T0, limit=10) == [("c", T0 - 7.25)]
    assert await index.peek_next(PARTITION) == T0 + 100


async def test_partitions_are_separate(index: DueIndex) -> None:
    await index.schedule(1, [("a", T0)])
    await index.schedule(2, [("a", T0 - 1)])
    assert await index.pop_due(1, T0, limit=10) == [("a", T0)]
    assert await index.size(2) == 1


async def test_empty_index(index: DueIndex) -> None:
    await index.schedule(PARTITION, [])
    assert await index.peek_next(PARTITION) is None
    assert await index.size(PARTITION) == 0
    assert await index.backlog(PARTITION, T0) == 0
    assert await index.pop_due(PARTITION, T0, limit=1) == []


async def test_backlog_counts_due_at_or_before(index: DueIndex) -> None:
    await index.schedule(PARTITION, [(f"c{i}", T0 - 50 + i) for i in range(100)])
    assert await index.backlog(PARTITION, T0) == 51  # T0-50 .. T0 inclusive
    assert await index.backlog(PARTITION, T0 - 51) == 0
    await index.pop_due(PARTITION, T0, limit=20)
    assert await index.backlog(PARTITION, T0) == 31
    assert await index.size(PARTITION) == 80


async def test_concurrent_pops_never_share_a_member(
    isolated_settings: Settings, index: DueIndex
) -> None:
    due = {f"c{i:05d}": T0 - i for i in range(3_000)}
    await index.schedule(PARTITION, [*due.items(), ("later", T0 + 60)])
    # Two sweepers on their own connections, each popping in chunks until nothing is due.
    clients = [aioredis.Redis.from_url(isolated_settings.redis_url) for _ in range(2)]
    sweepers = [DueIndex(c, isolated_settings.redis_key_prefix) for c in clients]

    async def sweep(sweeper: DueIndex) -> list[tuple[str, float]]:
        taken: list[tuple[str, float]] = []
        while chunk := await sweeper.pop_due(PARTITION, T0, limit=97):
            taken.extend(chunk)
        return taken

    try:
        first, second = await asyncio.gather(*(sweep(s) for s in sweepers))
    finally:
        for c in clients:
            await c.aclose()
    assert first and second  # both sweepers really took part
    assert {cid for cid, _ in first}.isdisjoint(cid for cid, _ in second)
    assert dict(first) | dict(second) == due
    assert len(first) + len(second) == len(due)
    assert await index.size(PARTITION) == 1


async def test_pop_cost_does_not_grow_with_not_due(index: DueIndex) -> None:
    not_due = [(f"n{i:06d}", T0 + 1 + i) for i in range(50_000)]
    due = [(f"d{i:02d}", T0 - i) for i in range(10)]
    await index.schedule(PARTITION, not_due + due)
    popped = await index.pop_due(PARTITION, T0, limit=1_000)
    assert popped == sorted(due, key=lambda item: item[1])
    assert await index.size(PARTITION) == 50_000  # the not-due members were left alone
    assert await index.backlog(PARTITION, T0) == 0
    assert await index.peek_next(PARTITION) == T0 + 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
async def test_non_finite_times_are_refused(index: DueIndex, bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        await index.schedule(PARTITION, [("a", bad)])
    with pytest.raises(ValueError, match="finite"):
        await index.pop_due(PARTITION, bad, limit=1)


async def test_limit_must_be_positive(index: DueIndex) -> None:
    with pytest.raises(ValueError, match="positive"):
        await index.pop_due(PARTITION, T0, limit=0)


async def test_redis_failure_is_a_state_store_error() -> None:
    # Nothing listens on port 1; no retries, so the failure comes at once.
    client = aioredis.Redis(port=1, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(StateStoreError, match="pop due"):
            await DueIndex(client, "x").pop_due(0, T0, limit=1)
    finally:
        await client.aclose()
