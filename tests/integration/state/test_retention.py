"""The retention removals' script against the real Redis: an expired customer goes with its
index entries, unless an event newer than the one it expired with was applied meanwhile; a
customer that starts afresh loses its old keys but the record the apply script reset."""

from __future__ import annotations

from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from crm_core.settings import Settings
from scorers.segments import load_segments
from streams.state.keys import Layout
from streams.state.profiles import RedisProfileStore
from streams.state.query_index import CustomerIndex
from streams.state.retention import RetentionCleaner

pytestmark = pytest.mark.integration

T = 1_750_000_000


async def _customer(client: aioredis.Redis, settings: Settings, customer: str, newest: int) -> None:
    """A stored customer: record, snapshot, contact, shares, and its index entries."""
    layout = Layout(settings.redis_key_prefix)
    segment = load_segments().names[0]
    index = CustomerIndex(segment=segment, owner="agent-1", cluster=3)
    store = RedisProfileStore(client, settings)
    await store.write_fields(customer, {"xp": newest, "ix": index.to_bytes(), "as": b"{}"})
    await client.set(layout.snapshot(customer), b"{}")
    await client.set(layout.contact(customer), b"{}")
    await client.hset(layout.journal(customer), "op1", b"1:")
    await client.sadd(layout.shared(customer), "agent-2")
    await client.zadd(layout.segment(segment, "clv"), {customer: 1.0})
    await client.zadd(layout.cluster(3), {customer: 1.0})
    await client.sadd(layout.agent("agent-1", "owned"), customer)
    await client.sadd(layout.agent("agent-2", "shared"), customer)


async def _holding(client: aioredis.Redis, prefix: str, customer: str) -> list[str]:
    """The customer's keys that exist and the index sets that hold it (those written above)."""
    layout = Layout(prefix)
    found = [k for k in layout.customer_keys(customer) if await client.exists(k)]
    for key in (layout.segment(load_segments().names[0], "clv"), layout.cluster(3)):
        if await client.zscore(key, customer) is not None:
            found.append(key)
    for key in (layout.agent("agent-1", "owned"), layout.agent("agent-2", "shared")):
        if await client.sismember(key, customer):
            found.append(key)
    return sorted(found)


async def _run(
    client: aioredis.Redis,
    cleaner: RetentionCleaner,
    reset: list[str],
    expired: dict[str, tuple[int, int]],
) -> int:
    run = cast(Any, client).execute_command  # untyped in redis-py
    replies = [await run(*c) for c in cleaner.script_commands(reset, expired)]
    drops, removed = cleaner.index_commands(reset or list(expired), replies)
    for command in drops:
        await run(*command)
    return removed


async def test_expiry_removal_reset_and_a_newer_event(
    isolated_settings: Settings, redis_client: aioredis.Redis
) -> None:
    settings, client = isolated_settings, redis_client
    prefix = settings.redis_key_prefix
    layout = Layout(prefix)
    cleaner = RetentionCleaner(layout)
    try:
        await _customer(client, settings, "gone", T)
        await _customer(client, settings, "newer", T + 60)  # an event after the round's read
        await _customer(client, settings, "afresh", T)
        before = await _holding(client, prefix, "newer")
        expired = {"gone": (0, T), "newer": (0, T)}
        removed = await _run(client, cleaner, [], expired)
        assert removed == 1
        assert await _holding(client, prefix, "gone") == []
        assert await _holding(client, prefix, "newer") == before  # left alone

        assert await _run(client, cleaner, ["afresh"], {}) == 1
        kept = await _holding(client, prefix, "afresh")
        assert kept == sorted([layout.profile("afresh"), layout.journal("afresh")])
        assert await _run(client, cleaner, [], {"gone": (0, T)}) == 1  # again: harmless
        assert await _holding(client, prefix, "gone") == []
    finally:
        for customer in ("gone", "newer", "afresh"):
            await client.delete(*layout.customer_keys(customer))
        for key in (layout.segment(load_segments().names[0], "clv"), layout.cluster(3)):
            await client.delete(key)
        await client.delete(layout.agent("agent-1", "owned"), layout.agent("agent-2", "shared"))
