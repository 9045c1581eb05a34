"""Scale: throughput with 1 and 2 workers in one group, and Redis memory per customer.

``throughput``: fills fresh 8-partition input topics once with a simulated history, then, on
the same data, times ``--runs`` runs each of 1 worker and of 2 workers (``crm-score worker``
subprocesses in one consumer group; fresh group and Redis prefix per run; replay mode, churn
learner off, published probability model and RFM boundaries, so timers and alerts are on).
Rates count from the first committed progress to zero lag (group joins left out). On a 2-core
machine that also runs Kafka and Redis, two workers share the same two cores.

``memory``: writes ``--customers`` customers (100k, 1M) straight into Redis with the store's
own apply script (a few purchase, service and marketing events each, so each hash, dedup record
and applied offset is as the pipeline leaves it), then an alert state, a due-index entry and one
alert key per customer, as a round's save does, and reports MEMORY USAGE per key kind (mean of a
sample) and the used_memory delta per customer. Everything is deleted at the end.

    python -m bench.scale throughput --customers 3000 --runs 3
    python -m bench.scale memory --customers 100000
    python -m bench.scale memory --customers 1000000

On a Redis Cluster (``CRM_REDIS_URL=redis+cluster://...``) ``memory`` also gives the delta
per master.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio.cluster import RedisCluster

from bench.pipeline import _model_for, _publish
from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.services import free_port
from crm_score.simulate import SimulationConfig, simulate
from schemas import EventParser
from scorers.deltas import delta_for, epoch_seconds
from scorers.timeline import CustomerState
from streams.ingest.lag import group_lag
from streams.ingest.topics import ensure_topics
from streams.state.profiles import ApplyRequest, RedisProfileStore, connect_redis
from streams.state.records import write_command
from streams.state.resp_cluster import is_cluster_url
from streams.state.round_store import RoundStore


async def _workers_rate(settings: Settings, workers: int, total: int) -> float:
    """Events/s of ``workers`` worker processes from first committed progress to zero lag."""
    env = settings.subprocess_env(CRM_LEARNER_ENABLED="false")
    procs = []
    for _ in range(workers):
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "crm_score", "worker", "-l", "warn",
                env={**env, "CRM_WEB_PORT": str(free_port())},
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
        )  # fmt: skip
    group = f"{settings.app_id}.ingest"
    try:
        first: tuple[float, int] | None = None
        while True:
            lag = sum((await group_lag(settings, group, settings.input_topics)).values())
            now, done = time.monotonic(), total - lag
            if first is None and done > 0:
                first = (now, done)
            if lag == 0 and first is not None:
                return (total - first[1]) / (now - first[0])
            if any(p.returncode is not None for p in procs):
                raise RuntimeError("a worker exited")
            await asyncio.sleep(0.1)
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
        for p in procs:
            await p.wait()


async def throughput(args: argparse.Namespace) -> dict[str, Any]:
    config = SimulationConfig.ending_at(
        datetime.now(UTC), days=365, customers=args.customers, seed=args.seed
    )
    simulation = simulate(config)
    tag = uuid.uuid4().hex[:8]
    base = Settings().model_copy(
        update={
            "topic_prefix": f"scale{tag}.",
            "partitions": args.partitions,
            "clock_mode": "replay",
            "replay_until": max(m.event_time for m in simulation) + timedelta(seconds=1),
            "learner_enabled": False,
        }
    )
    await ensure_topics(base)
    await produce_messages(base, simulation)
    models = _model_for(simulation, config.end)
    runs: dict[str, list[float]] = {"1_worker": [], "2_workers": []}
    for _ in range(args.runs):
        for name, workers in (("1_worker", 1), ("2_workers", 2)):
            run = base.model_copy(
                update={
                    "app_id": f"scale{uuid.uuid4().hex[:8]}",
                    "redis_key_prefix": f"s{uuid.uuid4().hex[:8]}",
                }
            )
            await _publish(run, models)
            runs[name].append(await _workers_rate(run, workers, len(simulation)))
    medians = {name: round(statistics.median(v)) for name, v in runs.items()}
    return {
        "events": len(simulation),
        "customers": args.customers,
        "partitions": args.partitions,
        "runs": {name: [round(v) for v in values] for name, values in runs.items()},
        "median_events_per_second": medians,
        "ratio_2_to_1": round(medians["2_workers"] / medians["1_worker"], 2),
    }


async def _used_memory(client: Any, cluster: bool) -> dict[str, int]:
    """``used_memory`` of each master (one entry, ``redis``, on a single Redis)."""
    if not cluster:
        return {"redis": int((await client.info("memory"))["used_memory"])}
    replies = await client.info("memory", target_nodes=RedisCluster.PRIMARIES)
    return {name: int(info["used_memory"]) for name, info in sorted(replies.items())}


async def memory(args: argparse.Namespace) -> dict[str, Any]:
    """Customers written with the apply script, then a save's state, due entry, alert key."""
    prefix = f"bmem{uuid.uuid4().hex[:8]}"
    settings = Settings().model_copy(update={"redis_key_prefix": prefix})
    client = connect_redis(settings)
    store = RedisProfileStore(client, settings)
    rounds = RoundStore(client, store, settings)
    parser = EventParser(max_bytes=64 * 1024, max_future_skew=timedelta(minutes=5))
    # One simulated year of 2,000 customers gives the event mix; customer i of the bench
    # replays the events of simulated customer i % 2000 under its own id (at most
    # --events-per-customer of them, the newest).
    sim = simulate(SimulationConfig.ending_at(datetime.now(UTC), customers=2000, seed=3))
    now = datetime.now(UTC)
    by_customer: dict[str, list[Any]] = {}
    for m in sim:
        event = parser.parse(m.value, m.kind, now)
        by_customer.setdefault(event.customer_id, []).append((m.kind, event))
    templates = [evs[-args.events_per_customer :] for evs in by_customer.values()]
    state = CustomerState().to_bytes()
    rng = random.Random(1)
    cluster = is_cluster_url(settings.redis_url)
    base_used = await _used_memory(client, cluster)
    start = time.perf_counter()
    ids = [f"m{i:07d}" for i in range(args.customers)]
    offset = 0
    sha = await store.script()
    for chunk_start in range(0, len(ids), 2000):
        requests = []
        for cid in ids[chunk_start : chunk_start + 2000]:
            for kind, event in templates[rng.randrange(len(templates))]:
                offset += 1
                requests.append(
                    ApplyRequest(
                        customer_id=cid,
                        kind=kind,
                        offset=offset,
                        event_id=f"{cid}-{event.event_id}",
                        event_time=epoch_seconds(event.event_time),
                        delta=delta_for(event, {"USD": 1.0}),
                    )
                )
        results = await store.apply_batch(requests)
        last = {r.customer_id: res.seq for r, res in zip(requests, results, strict=True)}
        commands: list[tuple[str | bytes | int, ...]] = []
        for cid, seq in last.items():  # what a round's save leaves: state + mark, no journal
            saved: dict[str, bytes | int] = {"as": state, "jw": seq}
            commands.append(write_command(sha, rounds.profile_key(cid), saved))
            commands.append(("DEL", store.journal_key(cid)))
            commands.append(("HSET", rounds.alerts_key(cid), f"segment_changed:{cid}:1:x", 1))
        items = [(cid, 1.9e9 + rng.random() * 3e7) for cid in last]
        commands += rounds.due.schedule_commands(0, items)
        await rounds._execute(commands)
    fill_seconds = time.perf_counter() - start
    per_node = {
        node: used - base_used[node] for node, used in (await _used_memory(client, cluster)).items()
    }
    used = sum(per_node.values())
    sample = rng.sample(ids, min(2000, len(ids)))
    sizes: dict[str, list[int]] = {"profile_hash": [], "seen_ids": [], "alert_keys": []}
    for cid in sample:
        sizes["profile_hash"].append(await client.memory_usage(rounds.profile_key(cid)) or 0)
        sizes["seen_ids"].append(await client.memory_usage(store.seen_key(cid)) or 0)
        sizes["alert_keys"].append(await client.memory_usage(rounds.alerts_key(cid)) or 0)
    zset = int(await client.memory_usage(rounds.due.key(0), samples=0) or 0)
    means = {k: round(statistics.mean(v), 1) for k, v in sizes.items()}
    try:
        return {
            "customers": args.customers,
            "events_per_customer_max": args.events_per_customer,
            "events_applied": offset,
            "fill_seconds": round(fill_seconds, 1),
            "apply_events_per_second": round(offset / fill_seconds),
            "memory_usage_mean_bytes": means,
            "due_index_bytes_per_customer": round(zset / args.customers, 1),
            "sum_bytes_per_customer": round(sum(means.values()) + zset / args.customers, 1),
            "used_memory_delta_per_customer": round(used / args.customers, 1),
            "used_memory_delta_mb": round(used / 2**20, 1),
            "used_memory_delta_mb_per_node": {n: round(b / 2**20, 1) for n, b in per_node.items()},
        }
    finally:
        for chunk_start in range(0, len(ids), 5000):
            keys = []
            for cid in ids[chunk_start : chunk_start + 5000]:
                keys += [rounds.profile_key(cid), store.seen_key(cid), rounds.alerts_key(cid)]
            await client.unlink(*keys)
        await client.unlink(rounds.due.key(0))
        await store.close()
        await rounds.close()
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--customers", type=int, default=3000)
    t.add_argument("--partitions", type=int, default=8)
    t.add_argument("--runs", type=int, default=3)
    t.add_argument("--seed", type=int, default=1)
    m = sub.add_parser("memory")
    m.add_argument("--customers", type=int, default=100_000)
    m.add_argument("--events-per-customer", type=int, default=40)
    a = parser.parse_args()
    result = asyncio.run(throughput(a) if a.what == "throughput" else memory(a))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
