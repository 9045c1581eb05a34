"""Query API latency: GET one customer at a fixed rate against a populated Redis; prints JSON.

Fills a fresh Redis prefix with ``--customers`` customers (written by the round save's own
code, :class:`streams.state.query_index.RoundIndexer`), starts ``crm-score api`` in a
subprocess, and sends ``--rate`` requests per second for ``--seconds`` (open loop: requests are
sent on schedule whether or not earlier ones have answered, so queueing shows in the latency),
each for a random customer, with a key of ``--role``. Goal: p99 under 10 ms at 500 req/s.

    python -m bench.api_latency --customers 5000 --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from crm_core.settings import Settings
from crm_score.services import free_port
from schemas import PurchaseEvent, example_event_dict
from scorers.profile import Profile
from streams.api.auth import KeyStore
from streams.api.policy import Principal
from streams.round.messages import Applied, OutputMessage
from streams.state.keys import Layout
from streams.state.profiles import connect_redis
from streams.state.query_index import RoundIndexer

_SEGMENTS = ("Champions", "Loyal", "At Risk", "Hibernating", "Lost")


class _Record:
    topic, partition, offset, key, value, timestamp = "crm.purchase", 0, 0, None, b"", None


async def populate(settings: Settings, customers: int) -> list[str]:
    """Write ``customers`` customers as a round's save would; returns their ids."""
    layout = Layout(settings.redis_key_prefix)
    rng = random.Random(7)
    at = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
    template = example_event_dict("order_placed")
    ids = [f"bench-{i:06d}" for i in range(customers)]
    applied, snapshots = [], []
    for i, customer in enumerate(ids):
        raw = {**template, "customer_id": customer, "event_id": f"e{i}",
               "department": rng.choice(("sales/emea/uk", "sales/amer/us", "sales/apac")),
               "owner": f"agent-{rng.randint(1, 20)}"}  # fmt: skip
        event = PurchaseEvent.model_validate(raw)
        profile = Profile(
            orders=3, gross_minor=9000, last_purchase_at=at, last_purchase_event_at=at
        )
        applied.append(Applied(_Record(), event, profile, float(at), False))
        body = {"customer_id": customer, "segment": rng.choice(_SEGMENTS),
                "clv": rng.random() * 1e5, "churn_probability": rng.random(), "p_alive": 0.7,
                "reasons": ["no purchase for 120 days; usually buys every 20 days"],
                "churn_model_version": "7", "probability_model_version": "3"}  # fmt: skip
        snapshots.append(OutputMessage(0, customer.encode(), orjson.dumps(body)))
    changed, commands = RoundIndexer(layout).commands({}, applied, snapshots)
    client = connect_redis(settings)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            for customer, index in changed.items():
                fields = {"n": 3, "g": 9000, "lp": at, "xp": at, "ix": index.to_bytes()}
                pipe.hset(layout.profile(customer), mapping=fields)  # type: ignore[arg-type]
            await pipe.execute()
    finally:
        await client.aclose()
    return ids


async def _key(settings: Settings, role: str) -> str:
    principal = {
        "admin": Principal("", "admin"),
        "manager": Principal("", "manager", department="sales/emea"),
        "agent": Principal("", "agent", identity="agent-3"),
    }[role]
    client = connect_redis(settings)
    try:
        return await KeyStore(client, Layout(settings.redis_key_prefix)).create(principal)
    finally:
        await client.aclose()


async def _clean(settings: Settings, ids: list[str]) -> None:
    """Delete what the bench wrote (by name: a SCAN would stall a shared Redis)."""
    layout = Layout(settings.redis_key_prefix)
    keys = [layout.audit, layout.api_keys, layout.alerts, layout.auc_history]
    keys += [layout.segment(s, sort) for s in _SEGMENTS for sort in ("clv", "churn")]
    keys += [layout.agent(f"agent-{i}", "owned") for i in range(1, 21)]
    for c in ids:
        keys += [layout.profile(c), layout.snapshot(c), layout.contact(c), layout.shared(c)]
    client = connect_redis(settings)
    try:
        for start in range(0, len(keys), 1000):
            await client.unlink(*keys[start : start + 1000])
    finally:
        await client.aclose()


async def load(url: str, key: str, ids: list[str], rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop GETs of random customers at ``rate``/s; latency percentiles in ms."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    rng = random.Random(11)
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(customer: str) -> None:
            start = time.perf_counter()
            async with session.get(f"{url}/api/customers/{customer}") as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - start)

        for _ in range(50):  # warm up connections
            await one(rng.choice(ids))
        latencies.clear()
        statuses.clear()
        tasks = []
        begin = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(rng.choice(ids))))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "requests": len(ordered),
        "achieved_rate": round(len(ordered) / elapsed, 1),
        "statuses": {str(k): v for k, v in statuses.items()},
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * ordered[-1], 2),
    }


async def server_side(url: str) -> dict[str, float | None]:
    """p50/p99 of the server's own histogram of GET one customer (bucket upper bounds, ms)."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        text = await response.text()
    buckets = []
    for line in text.splitlines():
        if line.startswith("crm_api_request_seconds_bucket") and "customer_id}" in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0.0

    def quantile(q: float) -> float | None:
        for bound, count in buckets:
            if total and count >= q * total:
                return round(bound * 1000, 2) if bound != float("inf") else None
        return None

    return {"p50_ms_at_most": quantile(0.5), "p99_ms_at_most": quantile(0.99)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--role", choices=("admin", "manager", "agent"), default="admin")
    parser.add_argument("--server-log", default="/tmp/crm-api-bench.log", help="its stderr")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    settings = Settings().model_copy(update={"redis_key_prefix": f"bench-api-{tag}"})
    port = free_port()
    server = None
    ids: list[str] = [f"bench-{i:06d}" for i in range(args.customers)]
    log = await asyncio.to_thread(open, args.server_log, "ab")  # handed to the server
    try:
        ids = await populate(settings, args.customers)
        key = await _key(settings, args.role)
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crm_score", "api", "--port", str(port),
            env=settings.subprocess_env(), stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        report = await load(url, key, ids, args.rate, args.seconds)
        report["server_side"] = await server_side(url)
    finally:
        if server is not None and server.returncode is None:
            server.terminate()
            await server.wait()
        await _clean(settings, ids)
        log.close()
    print(orjson.dumps({"customers": args.customers, "role": args.role,
                        "target_rate": args.rate, "seconds": args.seconds, **report},
                       option=orjson.OPT_INDENT_2).decode())  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
