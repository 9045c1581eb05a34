"""Timer sweep on one partition's due-index: cost follows the due customers, not the customer base.

Fills one partition's due-index with ``--customers`` customers (``--due-fraction`` of them due at
the sweep's watermark, picked at random with ``--seed``; the others due up to a year later) and a
profile hash per customer in the store's key layout: purchase history (first/last purchase,
orders, gross spend), marketing fields, applied offsets and the alert state (field ``as``). A due
customer's last purchase is 7-37 days before the watermark and its state is the one its last
purchase's event checkpoint left (``Timeline.event``: segment, value tier; ~20 % high value), so
it is due at its first checkpoint, ``Timeline.next_due(state, profile, last purchase)``: R drops
after 7 days of silence (after 30 too for some), and P(alive) falls under the alert threshold
for some high-value ones. Not-due customers get a cheap state (never read by the sweep).

``--score`` (default): each of ``--runs`` sweeps does what a timer round does, in chunks of
``--chunk`` customers until none is due: pop the chunk (DueIndex.pop_due at the watermark), load
profiles + alert states (RoundStore.load_and_apply with no events), walk them to the watermark
(RoundScorer.score with no applied events: re-scoring, alert rules; fixed ProbabilityModel and
RfmBoundaries), and write states, next due times, alert keys and the watermark (RoundStore.save).
Each stage is timed. Since save moves the due customers past the watermark, their states and due
times are re-seeded and their alert keys deleted before each run, outside the timed part.

``--no-score``: the old sweep, pop in chunks and read each chunk's profiles (pipelined HGETALL),
then re-schedule at the old due times; for contrast, the same customers are also popped from an
index that holds only them.

Prints JSON with every run, the medians, checks (popped == the due set, not-due index entries
untouched) and Redis memory (MEMORY USAGE of the sorted set, bytes per entry, used_memory deltas,
which other users of the same Redis make approximate). Every key is under a fresh prefix and is
deleted at the end.

    python -m bench.sweep --customers 1000000 --due-fraction 0.01 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis

from bench.sweep_population import BOUNDARIES, MODEL, WATERMARK, customer, population, record_fields
from crm_core.settings import Settings
from scorers.alerts import AlertPolicy
from scorers.profile import Profile
from scorers.segments import load_segments
from scorers.timeline import CustomerState, Timeline
from streams.round.scorer import RoundScorer
from streams.state.profiles import RedisProfileStore, connect_redis
from streams.state.records import ProfileRecords, pairs, write_command
from streams.state.resp import RespConnection, pack_command
from streams.state.round_store import RoundStore

PARTITION = 0
DUE_ONLY_PARTITION = 1  # the contrast index of --no-score: only the due customers
FILL_CHUNK = 10_000
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _used_memory(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def _fill_profiles(
    hot: RespConnection,
    store: RedisProfileStore,
    rounds: RoundStore,
    ids: list[str],
    due: dict[str, tuple[Profile, CustomerState]],
    timeline: Timeline,
    seed: int,
) -> None:
    rng = random.Random(seed + 1)
    sha = await store.script()
    for chunk in _chunks(ids, FILL_CHUNK):
        packed = b"".join(
            pack_command(
                write_command(sha, rounds.profile_key(cid),
                 record_fields(rng, *(due.get(cid) or customer(rng, timeline, due=False))))
            )
            for cid in chunk
        )  # fmt: skip
        await hot.execute(packed, len(chunk))


async def _reseed(
    client: aioredis.Redis, rounds: RoundStore, seeds: dict[str, tuple[bytes, int]]
) -> None:
    """Put the due customers back as they were before a scored sweep (state, due time, alerts)."""
    records = ProfileRecords(client)
    async with client.pipeline(transaction=False) as pipe:
        for cid, (state, _) in seeds.items():
            await records.queue_write(pipe, rounds.profile_key(cid), {"as": state})
        for part in _chunks([rounds.alerts_key(cid) for cid in seeds], FILL_CHUNK):
            pipe.unlink(*part)
        await pipe.execute()
    await rounds.due.schedule(PARTITION, [(cid, due) for cid, (_, due) in seeds.items()])


async def _read_profiles(
    client: aioredis.Redis, rounds: RoundStore, customer_ids: list[str]
) -> int:
    """Read the profiles in one round trip and decode them; how many exist."""
    records = ProfileRecords(client)
    async with client.pipeline(transaction=False) as pipe:
        for cid in customer_ids:
            await records.queue_read(pipe, rounds.profile_key(cid))
        raws = [pairs(reply) for reply in await pipe.execute()]
    return len([Profile.from_redis(raw) for raw in raws if raw])


async def _scored_sweep(rounds: RoundStore, scorer: RoundScorer, chunk: int) -> dict[str, Any]:
    """A timer round over everything due at the watermark, chunk by chunk; seconds per stage."""
    seconds = dict.fromkeys(("pop", "load", "score", "save"), 0.0)
    popped: list[str] = []
    checkpoints = fresh = 0
    alerts: Counter[str] = Counter()
    clock = time.perf_counter
    begin = clock()
    while True:
        start = clock()
        taken = await rounds.due.pop_due(PARTITION, WATERMARK, chunk)
        seconds["pop"] += (lap := clock()) - start
        if not taken:
            break
        names = [cid for cid, _ in taken]
        popped += names
        before, _ = await rounds.load_and_apply(dict.fromkeys(names, PARTITION), [])
        seconds["load"] += (start := clock()) - lap
        scored = scorer.score([], before, {PARTITION: WATERMARK})
        seconds["score"] += (lap := clock()) - start
        new = await rounds.save(scored, {PARTITION: float(WATERMARK)})
        seconds["save"] += clock() - lap
        checkpoints += scored.timer_checkpoints
        alerts.update(key.split(":", 1)[0] for _, key, _ in scored.alerts)  # keys start: rule
        fresh += sum(new)
    total = clock() - begin
    return {
        "popped": len(popped),
        "popped_keys": popped,
        "checkpoints": checkpoints,
        "alerts": alerts.total(),
        "alerts_by_rule": dict(alerts),
        "alerts_new": fresh,
        **{f"{stage}_seconds": s for stage, s in seconds.items()},
        "total_seconds": total,
        "backlog_after": await rounds.due.backlog(PARTITION, WATERMARK),
        "remaining_after": await rounds.due.size(PARTITION),
    }


async def _sweep(
    client: aioredis.Redis, rounds: RoundStore, read: bool, partition: int, chunk: int
) -> dict[str, Any]:
    """Pop (and read) everything due at the watermark, then re-schedule it; timings in seconds."""
    index = rounds.due
    popped: list[tuple[str, float]] = []
    pop_s = read_s = 0.0
    profiles = 0
    while True:
        start = time.perf_counter()
        taken = await index.pop_due(partition, WATERMARK, chunk)
        pop_s += time.perf_counter() - start
        if not taken:
            break
        popped.extend(taken)
        if read:
            start = time.perf_counter()
            profiles += await _read_profiles(client, rounds, [cid for cid, _ in taken])
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
        "profiles_read": profiles,
        "pop_seconds": pop_s,
        "read_seconds": read_s,
        "sweep_seconds": pop_s + read_s,
        "reschedule_seconds": time.perf_counter() - start,
        **after,
    }


async def _index_checks(
    client: aioredis.Redis, rounds: RoundStore, due_at: dict[str, int], due: set[str], score: bool
) -> dict[str, Any]:
    """Not-due entries still at their due times; due ones after the watermark (``score``: their
    next checkpoint) or, without ``score``, back at their old due times."""
    raw = await client.zrange(rounds.due.key(PARTITION), 0, -1, withscores=True)
    entries = {cid.decode(): at for cid, at in cast(list[tuple[bytes, float]], raw)}
    untouched = sum(entries.get(cid) == t for cid, t in due_at.items() if cid not in due)
    kept = [(entries[cid], due_at[cid]) for cid in due if cid in entries]
    return {
        "not_due_untouched": untouched == len(due_at) - len(due),
        "not_due_entries_unchanged": untouched,
        "due_entries_after_sweeps": len(kept),
        "due_rescheduled_ok": all(t > WATERMARK if score else t == old for t, old in kept),
    }


async def _delete_keys(client: aioredis.Redis, keys: Sequence[str]) -> None:
    for chunk in _chunks(keys, FILL_CHUNK):
        await client.unlink(*chunk)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bsweep{uuid.uuid4().hex[:8]}"
    settings = Settings().model_copy(update={"redis_key_prefix": prefix})
    client = connect_redis(settings)
    store = RedisProfileStore(client, settings)
    rounds = RoundStore(client, store, settings)
    index = rounds.due
    timeline = Timeline(AlertPolicy(), load_segments(), BOUNDARIES, MODEL)
    scorer = RoundScorer(timeline)
    password = settings.redis_password
    hot = RespConnection(settings.redis_url, password.get_secret_value() if password else None)
    profiles = args.profiles or args.score
    ids, due_at, due_customers = population(args.customers, args.due_fraction, args.seed, timeline)
    due = sorted((cid, due_at[cid]) for cid in due_customers)
    seeds = {cid: (state.to_bytes(), due_at[cid]) for cid, (_, state) in due_customers.items()}
    expected = [cid for cid, _ in due]
    try:
        base_memory = await _used_memory(client)
        start = time.perf_counter()
        for part in _chunks(list(due_at.items()), 100_000):
            await index.schedule(PARTITION, part)
        fill_index_s = time.perf_counter() - start
        index_memory = await _used_memory(client)
        start = time.perf_counter()
        if profiles:
            await _fill_profiles(hot, store, rounds, ids, due_customers, timeline, args.seed)
        fill_profiles_s = time.perf_counter() - start
        profiles_memory = await _used_memory(client)
        zset_bytes = int(await client.memory_usage(index.key(PARTITION), samples=0) or 0)
        sample = random.Random(args.seed).sample(ids, min(1_000, len(ids)))
        profile_bytes = [await client.memory_usage(rounds.profile_key(c)) or 0 for c in sample]
        if not args.score:
            await index.schedule(DUE_ONLY_PARTITION, due)

        runs = []
        for _ in range(args.runs):
            if args.score:
                start = time.perf_counter()
                await _reseed(client, rounds, seeds)
                reseed_s = time.perf_counter() - start
                run = await _scored_sweep(rounds, scorer, args.chunk)
                run["reseed_seconds"] = reseed_s
                assert sorted(run.pop("popped_keys")) == expected
            else:
                run = await _sweep(client, rounds, profiles, PARTITION, args.chunk)
                contrast = await _sweep(client, rounds, False, DUE_ONLY_PARTITION, args.chunk)
                popped, alone = sorted(run.pop("popped_keys")), contrast.pop("popped_keys")
                assert popped == sorted(alone) == expected
                run["pop_seconds_due_only_index"] = contrast["pop_seconds"]
            runs.append(run)
        checks = await _index_checks(client, rounds, due_at, set(expected), args.score)
        names = (
            ("total_seconds", "pop_seconds", "load_seconds", "score_seconds", "save_seconds",
             "reseed_seconds", "checkpoints", "alerts")
            if args.score
            else ("sweep_seconds", "pop_seconds", "read_seconds", "reschedule_seconds",
                  "pop_seconds_due_only_index")
        )  # fmt: skip
        medians = {name: round(statistics.median(r[name] for r in runs), 4) for name in names}
    finally:
        await _delete_keys(client, [index.key(p) for p in (PARTITION, DUE_ONLY_PARTITION)])
        await _delete_keys(client, [rounds.watermark_key(PARTITION)])
        await _delete_keys(client, [rounds.profile_key(cid) for cid in ids])
        await _delete_keys(client, [rounds.alerts_key(cid) for cid in due_customers])
        left = [key async for key in client.scan_iter(match=f"{prefix}:*", count=10_000)]
        await hot.close()
        await store.close()
        await rounds.close()
        await client.aclose()
    goal = "total_seconds" if args.score else "sweep_seconds"
    return {
        "customers": args.customers,
        "due": len(due),
        "chunk": args.chunk,
        "score": args.score,
        "profiles": profiles,
        "fill_index_seconds": round(fill_index_s, 3),
        "fill_profiles_seconds": round(fill_profiles_s, 3),
        "runs": [
            {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in runs
        ],
        "median": medians,
        f"goal_{goal}": 1.0,
        "goal_met": medians[goal] <= 1.0,
        "popped_equals_due": all(r["popped"] == len(due) for r in runs),
        **checks,
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
        "--score", action=argparse.BooleanOptionalAction, default=True,
        help="run what a timer round does (load, re-score, save); --no-score: pop + read only",
    )  # fmt: skip
    parser.add_argument(
        "--no-profiles", dest="profiles", action="store_false",
        help="with --no-score: skip the profile hashes (index only: less Redis memory)",
    )  # fmt: skip
    print(
        orjson.dumps(
            asyncio.run(main(args=parser.parse_args())), option=orjson.OPT_INDENT_2
        ).decode()
    )
