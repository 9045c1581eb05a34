"""Read and wipe every key under a test's Redis prefix (what an erasure must leave behind)."""

from __future__ import annotations

from typing import Any

from crm_core.settings import Settings
from streams.state.keys import Layout
from streams.state.profiles import connect_redis


async def holding(settings: Settings, needle: str) -> list[str]:
    """Every key under the settings' prefix whose name or value holds ``needle``."""
    client = connect_redis(settings)
    found, wanted = [], needle.encode()
    values: list[Any]
    try:
        async for raw_key in client.scan_iter(match=f"{settings.redis_key_prefix}:*", count=10_000):
            key = bytes(raw_key)
            kind = _text(await client.type(key))
            if kind == "string":
                values = [await client.get(key)]
            elif kind == "hash":
                pairs: dict[Any, Any] = await client.hgetall(key)
                values = [x for kv in pairs.items() for x in kv]
            elif kind == "set":
                values = list(await client.smembers(key))
            elif kind == "zset":
                values = list(await client.zrange(key, 0, -1))
            elif kind == "list":
                values = list(await client.lrange(key, 0, -1))
            else:  # stream
                entries: Any = await client.xrange(key)
                values = [x for _, fields in entries for kv in fields.items() for x in kv]
            if wanted in key or any(wanted in v for v in values if isinstance(v, bytes)):
                found.append(key.decode(errors="replace"))
    finally:
        await client.aclose()
    return found


async def wipe(settings: Settings, *, keep_suppression: bool) -> None:
    """Delete every key of the prefix, or all but the suppression records (a wiped Redis that
    kept ``{erased}``, as the README asks before a rebuild)."""
    client = connect_redis(settings)
    keep = Layout(settings.redis_key_prefix).erased.encode() if keep_suppression else None
    try:
        pattern = f"{settings.redis_key_prefix}:*"
        async for key in client.scan_iter(match=pattern, count=10_000):
            if bytes(key) != keep:
                await client.delete(key)
    finally:
        await client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
