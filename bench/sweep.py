"""Timer sweep on one partition's due-index: cost follows the due customers, not the customer base.

Fills one partition's due-index with ``--customers`` customers (``--due-fraction`` of them due at
the sweep's watermark, picked at random with ``--seed``; the others due up to a year later) and
a small profile hash per customer in the store's key layout. Then, ``--runs`` times, sweeps as a
timer does: pop due customers in chunks of ``--chunk`` at the watermark until none is due, reading
each chunk's profiles (pipelined HGETALL) after its pop. After each sweep the popped customers
are re-scheduled in the same chunks (as a timer does after re-scoring them; here at their old due
time, which also re-fills the due subset for the next run). For contrast, the same due customers
are also popped from an index that holds only them.

Prints JSON with every run, the medians, and Redis memory (MEMORY USAGE of the sorted set, bytes
per entry, used_memory deltas, which other users of the same Redis make approximate). Every key is
under a fresh prefix and is deleted at the end.

    python -m bench.sweep --customers 1000000 --due-fraction 0.01 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis

from crm_score.settings import Settings
from scorers.profile import Profile
from streams._resp import RespConnection, pack_command
from streams.due_index import DueIndex
from streams.store import RedisProfileStore, connect_redis

WATERMARK = 1_767_225_600  # 2026-01-01T00:00:00Z: the event time the sweep runs at
DAY = 86_400
PARTITION = 0
DUE_ONLY_PARTITION = 1  # the contrast index: only the due customers
FILL_CHUNK = 10_000
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _population(customers: int, fraction: float, seed: int) -> tuple[list[str], dict[str, int]]:
    """Customer ids and each one's due time; ``fraction`` of them are due at the watermark."""
    rng = random.Random(seed)
    ids = [f"B{i:07d}" for i in range(customers)]
    due_at = {cid: WATERMARK + 1 + rng.randrange(365 * DAY) for cid in ids}
    for i in rng.sample(range(customers), round(customers * fraction)):
        due_at[ids[i]] = WATERMARK - rng.randrange(30 * DAY)  # became due in the last 30 days
    return ids, due_at


def _profile_fields(rng: random.Random) -> list[str | int]:
    """A small, plausible profile hash (purchase and marketing fields, applied offsets)."""
    first = WATERMARK - rng.randrange(3 * 365 * DAY)
    last = first + rng.randrange(WATERMARK - first + 1)
    orders = 1 + rng.randrange(20)
    sent = rng.randrange(200)
    return [
        "fp", first, "lp", last, "xp", last, "n", orders, "g", orders * rng.randrange(500, 20_000),
        "rn", rng.randrange(2), "rm", rng.randrange(3_000), "op", rng.randrange(10**7),
        "ms", sent, "md", sent, "mo", sent // 3, "mc", sent // 10, "le", last, "xm", last,
        "om", rng.randrange(10**7),
    ]  # fmt: skip


async def _used_memory(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def _fill_profiles(
    hot: RespConnection, store: RedisProfileStore, ids: list[str], seed: int
) -> None:
    rng = random.Random(seed + 1)
    for chunk in _chunks(ids, FILL_CHUNK):
        packed = b"".join(
            pack_command(("HSET", store.profile_key(cid), *_profile_fields(rng))) for cid in chunk
        )
        await hot.execute(packed, len(chunk))


async def _read_profiles(
    client: aioredis.Redis, store: RedisProfileStore, customer_ids: list[str]
) -> int:
    """HGETALL the profiles in one round trip and decode them; how many exist."""
    async with client.pipeline(transaction=False) as pipe:
        for cid in customer_ids:
            pipe.hgetall(store.profile_key(cid))
        raws = await pipe.execute()
    return len([Profile.from_redis(raw) for raw in raws if raw])


async def _sweep(
    client: aioredis.Redis,
    index: DueIndex,
    store: RedisProfileStore | None,
    partition: int,
    chunk: int,
) -> dict[str, Any]:
    """Pop (and read) everything due at the watermark, then re-schedule it; timings in seconds."""
    popped: list[tuple[str, float]] = []
    pop_s = read_s = 0.0
    read = 0
    while True:
        start = time.perf_counter()
        taken = await index.pop_due(partition, WATERMARK, chunk)
        pop_s += time.perf_counter() - start
        if not taken:
            break
        popped.extend(taken)
        if store is not None:
            start = time.perf_counter()
            read += await _read_profiles(client, store, [cid for cid, _ in taken])
            read_s += time.perf_counter() - start
    after = {
        "backlog_after": await index.backlog(partition, WATERMARK),
        "remaining_after": await index.size(partition),
    }
    start = time.perf_counter()
    for part in _chunks(popped, chunk):
        await index.schedule(partition, part)
    return {
        "popped": len(popped),
        "popped_keys": [cid for cid, _ in popped],
        "profiles_read": read,
        "pop_seconds": pop_s,
        "read_seconds": read_s,
        "sweep_seconds": pop_s + read_s,
        "reschedule_seconds": time.perf_counter() - start,
        **after,
    }


async def _delete_keys(client: aioredis.Redis, keys: Sequence[str]) -> None:
    for chunk in _chunks(keys, FILL_CHUNK):
        await client.unlink(*chunk)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    prefix = f"bsweep{uuid.uuid4().hex[:8]}"
    client = connect_redis(settings)
    store = RedisProfileStore(client, settings, key_prefix=prefix)
    index = DueIndex(client, prefix)
    password = settings.redis_password
    hot = RespConnection(settings.redis_url, password.get_secret_value() if password else None)
    ids, due_at = _population(args.customers, args.due_fraction, args.seed)
    due = sorted((cid, t) for cid, t in due_at.items() if t <= WATERMARK)
    try:
        base_memory = await _used_memory(client)
        start = time.perf_counter()
        for part in _chunks(list(due_at.items()), 100_000):
            await index.schedule(PARTITION, part)
        fill_index_s = time.perf_counter() - start
        index_memory = await _used_memory(client)
        start = time.perf_counter()
        if args.profiles:
            await _fill_profiles(hot, store, ids, args.seed)
        fill_profiles_s = time.perf_counter() - start
        profiles_memory = await _used_memory(client)
        zset_bytes = int(await client.memory_usage(index.key(PARTITION), samples=0) or 0)
        sample = random.Random(args.seed).sample(ids, min(1_000, len(ids)))
        profile_bytes = [await client.memory_usage(store.profile_key(c)) or 0 for c in sample]
        await index.schedule(DUE_ONLY_PARTITION, due)

        runs = []
        for _ in range(args.runs):
            run = await _sweep(
                client, index, store if args.profiles else None, PARTITION, args.chunk
            )
            contrast = await _sweep(client, index, None, DUE_ONLY_PARTITION, args.chunk)
            expected = sorted(cid for cid, _ in due)
            assert sorted(run.pop("popped_keys")) == sorted(contrast.pop("popped_keys")) == expected
            run["pop_seconds_due_only_index"] = contrast["pop_seconds"]
            runs.append(run)
        medians = {
            name: round(statistics.median(r[name] for r in runs), 4)
            for name in ("sweep_seconds", "pop_seconds", "read_seconds", "reschedule_seconds",
                         "pop_seconds_due_only_index")
        }  # fmt: skip
    finally:
        await _delete_keys(client, [index.key(PARTITION), index.key(DUE_ONLY_PARTITION)])
        await _delete_keys(client, [store.profile_key(cid) for cid in ids])
        left = [key async for key in client.scan_iter(match=f"{prefix}:*", count=10_000)]
        await hot.close()
        await store.close()
        await client.aclose()
    return {
        "customers": args.customers,
        "due": len(due),
        "chunk": args.chunk,
        "profiles": args.profiles,
        "fill_index_seconds": round(fill_index_s, 3),
        "fill_profiles_seconds": round(fill_profiles_s, 3),
        "runs": [
            {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in runs
        ],
        "median": medians,
        "goal_sweep_seconds": 1.0,
        "goal_met": medians["sweep_seconds"] <= 1.0,
        "popped_equals_due": all(r["popped"] == len(due) for r in runs),
        "not_due_remaining": runs[-1]["remaining_after"],
        "redis_memory": {
            "sorted_set_bytes": zset_bytes,
            "sorted_set_bytes_per_entry": round(zset_bytes / args.customers, 1),
            "used_memory_delta_index": index_memory - base_memory,
            "used_memory_delta_profiles": profiles_memory - index_memory,
            "profile_hash_bytes_mean": round(statistics.mean(profile_bytes), 1),
        },
        "keys_left_after_cleanup": len(left),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--due-fraction", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=1_000, help="customers per pop")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-profiles", dest="profiles", action="store_false",
        help="skip the profile hashes (index only: ~100 MB less Redis memory per 1M customers)",
    )  # fmt: skip
    print(
        orjson.dumps(
            asyncio.run(main(args=parser.parse_args())), option=orjson.OPT_INDENT_2
        ).decode()
    )
