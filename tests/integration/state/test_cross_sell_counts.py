"""The cross-sell counters in real Redis equal the pure fold of the same orders, and redoing a
round (also one whose save was cut between the counters and the customer sets) changes nothing."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from crm_core.settings import Settings
from crm_score.simulate import SimulationConfig, simulate
from schemas import PurchaseEvent
from scorers.cross_sell import CrossSellPolicy, CrossSellStats, apply_order, plan_order
from scorers.profile import Profile
from streams.round.messages import Applied
from streams.state.cross_sell_counts import CrossSellDecision, CrossSellRound
from streams.state.resp import RespConnection, pack_command

pytestmark = pytest.mark.integration

ROUND = 200  # purchase events per round


@dataclass(frozen=True)
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None


def simulated_rounds(customers: int = 500, days: float = 365) -> list[list[Applied]]:
    applied = []
    sim = simulate(SimulationConfig(customers=customers, days=days, seed=21))
    for offset, message in enumerate(sim):
        if message.kind != "purchase":
            continue
        event = PurchaseEvent.model_validate_json(message.value)
        at = float(int(event.event_time.timestamp()))
        record = _Record("crm.purchase", 0, offset, message.key, message.value)
        applied.append(Applied(record, event, Profile(), at, False))
    applied.sort(key=lambda a: a.event_time)
    return [applied[i : i + ROUND] for i in range(0, len(applied), ROUND)]


@pytest.fixture(scope="module")
def rounds() -> list[list[Applied]]:
    return simulated_rounds()


@pytest.fixture
async def connection(isolated_settings: Settings) -> AsyncIterator[RespConnection]:
    conn = RespConnection(isolated_settings.redis_url)
    yield conn
    await conn.close()


async def execute(
    conn: RespConnection, commands: Sequence[tuple[str | bytes | int, ...]]
) -> list[object]:
    if not commands:
        return []
    packed = b"".join(pack_command(c) for c in commands)
    replies = await conn.execute(packed, len(commands))
    errors = [r for r in replies if isinstance(r, Exception)]
    assert not errors, errors
    return replies


async def decide(
    conn: RespConnection, xsell: CrossSellRound, batch: list[Applied]
) -> CrossSellDecision:
    reads = xsell.read_keys(a.event for a in batch)
    replies = await execute(conn, [("HGETALL", key) for key in reads.keys])
    hashes = [dict(zip(r[::2], r[1::2], strict=True)) for r in replies if isinstance(r, list)]
    return xsell.decide(reads, hashes, batch)


async def run(conn: RespConnection, xsell: CrossSellRound, rounds: list[list[Applied]]) -> int:
    drafts = 0
    for batch in rounds:
        decision = await decide(conn, xsell, batch)
        drafts += len(decision.drafts)
        await execute(conn, decision.commands())
    return drafts


def pure_fold(rounds: list[list[Applied]], policy: CrossSellPolicy) -> CrossSellStats:
    stats = CrossSellStats()
    had: dict[str, frozenset[str]] = {}
    for batch in rounds:
        for a in batch:
            event = a.event
            if not isinstance(event, PurchaseEvent) or event.type != "order_placed":
                continue
            basket = {item.category for item in event.payload.items}
            before = had.get(event.customer_id, frozenset())
            update = plan_order(policy, before, basket, a.event_time)
            apply_order(stats, policy, update)
            had[event.customer_id] = before | set(update.new)
    return stats


POLICIES = {
    "exact": CrossSellPolicy(min_count=5, half_life_days=math.inf),
    # every bound binds: a 3-day half-life (the reference moves), 3 items a customer, 2 partners
    "bounded": CrossSellPolicy(half_life_days=3, max_items_per_customer=3, max_partners=2),
}


@pytest.mark.parametrize("name", sorted(POLICIES))
async def test_redis_counters_equal_the_pure_fold(
    name: str,
    rounds: list[list[Applied]],
    connection: RespConnection,
    isolated_settings: Settings,
    redis_client: aioredis.Redis,
) -> None:
    policy = POLICIES[name]
    xsell = CrossSellRound(isolated_settings.redis_key_prefix, policy)
    drafts = await run(connection, xsell, rounds)
    stored = await xsell.stats(redis_client)
    assert stored == pure_fold(rounds, policy)  # the same floats, not just close
    if name == "exact":
        assert drafts > 0
        assert any(
            (r.antecedent, r.consequent) == ("ink", "paper")
            for r in await xsell.top_rules(redis_client, rounds[-1][-1].event.event_time)
        )


async def test_redoing_rounds_changes_nothing(
    rounds: list[list[Applied]],
    connection: RespConnection,
    isolated_settings: Settings,
    redis_client: aioredis.Redis,
) -> None:
    policy = POLICIES["bounded"]
    prefix = isolated_settings.redis_key_prefix
    await run(connection, CrossSellRound(prefix, policy), rounds[:5])
    once = await xsell_stats(prefix, policy, redis_client)

    # a restarted worker redoes the last two rounds, saved in full
    again = CrossSellRound(prefix, policy)
    assert await run(connection, again, rounds[3:5]) == 0  # their suggestions were recorded
    assert await xsell_stats(prefix, policy, redis_client) == once

    # a round whose save was cut after the counters, before the customer sets: redone in full
    cut = CrossSellRound(prefix, policy)
    decision = await decide(connection, cut, rounds[5])
    commands = decision.commands()
    assert commands[0][0] == "EVAL" and all(c[0] == "HSET" for c in commands[1:])
    await execute(connection, commands[:1])
    await run(connection, CrossSellRound(prefix, policy), rounds[5:6])
    assert await xsell_stats(prefix, policy, redis_client) == pure_fold(rounds[:6], policy)


async def xsell_stats(
    prefix: str, policy: CrossSellPolicy, client: aioredis.Redis
) -> CrossSellStats:
    return await CrossSellRound(prefix, policy).stats(client)
