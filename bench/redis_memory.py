"""Redis bytes per customer, counted over every key a run left under its key prefix.

``MEMORY USAGE <key> SAMPLES 0`` (exact: every element of an aggregate is counted) of each key
under ``{prefix}:``. A key whose hash tag is a customer id belongs to that customer (profile,
seen ids, alert claims, journal, cross-sell categories...); the others (due-index and watermark
per partition, cross-sell counters, alert stream, model registry, locks) are shared out over
the customers. Keys are grouped by their tag and suffix with digits folded (``due:3`` ->
``due:#``, the cross-sell rows as ``{xsell}:r:*``) so the table stays short.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Collection

from crm_core.settings import Settings
from streams.state.profiles import RedisProfileStore, connect_redis

__all__ = ["all_keys_per_customer", "profile_and_seen_per_customer"]

_TAG = re.compile(r"\{([^}]*)\}(.*)")
_BATCH = 1000


def _kind(key: str, prefix: str, customers: Collection[str]) -> tuple[str | None, str]:
    """(customer or None, kind) of one key."""
    found = _TAG.search(key[len(prefix) :])
    if found is None:
        return None, re.sub(r"\d+", "#", key[len(prefix) :])
    tag, suffix = found.groups()
    if tag in customers:
        return tag, "customer" + suffix
    shared = re.sub(r"\d+", "#", f"{{{tag}}}{suffix}")
    return None, re.sub(r"^(\{xsell\}:r:).*", r"\1*", shared)  # one row per item


async def all_keys_per_customer(
    settings: Settings, customers: Collection[str]
) -> dict[str, object]:
    """Mean bytes per customer over every key under the prefix, and per kind of key."""
    client = connect_redis(settings)
    prefix = settings.redis_key_prefix + ":"
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    keys: list[str] = []
    try:
        async for raw in client.scan_iter(match=pattern, count=_BATCH):
            keys.append(raw.decode() if isinstance(raw, bytes) else str(raw))
        sizes: list[int] = []
        for start in range(0, len(keys), _BATCH):
            async with client.pipeline(transaction=False) as pipe:
                for key in keys[start : start + _BATCH]:
                    pipe.memory_usage(key, samples=0)
                sizes += [int(size or 0) for size in await pipe.execute()]
    finally:
        await client.aclose()
    holders: set[str] = set()
    by_kind: dict[str, int] = {}
    for key, size in zip(keys, sizes, strict=True):
        customer, kind = _kind(key, prefix, customers)
        if customer is not None:
            holders.add(customer)
        by_kind[kind] = by_kind.get(kind, 0) + size
    n = max(len(holders), 1)
    return {
        "all_keys": round(sum(sizes) / n, 1),
        "customers_counted": len(holders),
        "keys": len(keys),
        "by_key": {k: round(v / n, 1) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
    }


async def profile_and_seen_per_customer(
    settings: Settings, customer_ids: list[str]
) -> dict[str, float]:
    """The bench's first count: the profile hash and the seen-ids key of ``customer_ids``."""
    client = connect_redis(settings)
    store = RedisProfileStore(client, settings)
    profile, seen = [], []
    try:
        for cid in customer_ids:
            profile.append(await client.memory_usage(store.profile_key(cid)) or 0)
            seen.append(await client.memory_usage(store.seen_key(cid)) or 0)
    finally:
        await client.aclose()
    return {
        "profile_hash": statistics.mean(profile),
        "recent_event_ids": statistics.mean(seen),
        "total": statistics.mean(p + s for p, s in zip(profile, seen, strict=True)),
    }
