"""Erasing one customer (GDPR art. 17): every key and index entry, and a suppression record.

:class:`CustomerEraser` deletes what :meth:`~streams.state.keys.Layout.customer_keys` lists
(profile with alert state, journal mark and API index; seen ids; journal; alert claims;
cross-sell items; latest snapshot; contact; shares), removes the customer from every shared
index (segment, value-group and cluster sorted sets, agents' sets, each partition's due-index
and in-flight timers, the alert and output outboxes, the recent-alerts stream) and rewrites the
audit entries that named the customer so they name its suppression tag instead.

The suppression record is the only trace left: ``{prefix}:{erased}`` maps the keyed hash
(HMAC-SHA256 with ``CRM_ERASURE_KEY``) of the id to when it was erased, so the pipeline can
recognise the id's later events (:class:`ErasedCustomers`) without keeping the id. Erasing
twice changes nothing the first did not.

Population aggregates (RFM quintile sketches, the probability and churn models, cross-sell
counts) hold no identifiers and are left as they are.

>>> suppression_tag(b"k" * 32, "c-1") == suppression_tag(b"k" * 32, "c-1")
True
>>> suppression_tag(b"k" * 32, "c-1") == suppression_tag(b"j" * 32, "c-1")
False
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from crm_core.errors import ConfigError
from crm_core.settings import Settings
from scorers.segments import load_segments
from scorers.value_groups import VALUE_GROUPS
from streams.state.keys import SORTS, Layout
from streams.state.query_index import CustomerIndex
from streams.state.records import ProfileRecords
from streams.state.resp import Command

__all__ = [
    "CustomerEraser",
    "ErasedCustomers",
    "ErasureReport",
    "erasure_secret",
    "index_removals",
    "suppression_tag",
]

_SEP = "\x1f"  # between customer and alert key in the alert outbox's fields
_LENGTH = struct.Struct(">I")  # the output outbox's length prefixes
_CHUNK = 5000  # stream entries read per XRANGE


def suppression_tag(secret: bytes, customer_id: str) -> str:
    """The keyed hash (HMAC-SHA256, hex) a suppression record is stored under."""
    return hmac.new(secret, customer_id.encode(), hashlib.sha256).hexdigest()


def index_removals(
    layout: Layout,
    segments: Iterable[str],
    customer_id: str,
    index: CustomerIndex,
    shared: Iterable[str],
) -> list[Command]:
    """The commands that take ``customer_id`` out of every shared index: each segment's and
    value group's sorted sets, its cluster's, its owner's and the sharing agents' sets."""
    commands: list[Command] = [
        ("ZREM", layout.segment(segment, sort), customer_id)
        for segment in segments
        for sort in SORTS
    ]
    commands += [("ZREM", layout.value_group(group), customer_id) for group in VALUE_GROUPS]
    if index.cluster is not None:
        commands.append(("ZREM", layout.cluster(index.cluster), customer_id))
    if index.owner is not None:
        commands.append(("SREM", layout.agent(index.owner, "owned"), customer_id))
    commands += [("SREM", layout.agent(agent, "shared"), customer_id) for agent in shared]
    return commands


def erasure_secret(settings: Settings) -> bytes:
    """``CRM_ERASURE_KEY`` as bytes; ConfigError says how to make one when it is not set."""
    if settings.erasure_key is None:
        raise ConfigError(
            "CRM_ERASURE_KEY is not set: erasure keeps a keyed hash of each erased id, so set it "
            "to a long random secret, the same for every worker and tool, e.g. "
            "CRM_ERASURE_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return settings.erasure_key.get_secret_value().encode()


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What one erasure did; names the customer only by its suppression tag."""

    tag: str
    erased_at: datetime
    first: bool  # False: the customer had been erased before (this run removed what was left)
    keys_deleted: int
    entries_removed: int

    def to_dict(self) -> dict[str, object]:
        """As JSON for the CLI and the API."""
        return {
            "suppression_tag": self.tag,
            "erased_at": self.erased_at.isoformat(),
            "first_erasure": self.first,
            "keys_deleted": self.keys_deleted,
            "index_entries_removed": self.entries_removed,
        }


class CustomerEraser:
    """Removes one customer's data from Redis and records the suppression."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._client = client
        self._layout = Layout(settings.redis_key_prefix)
        self._secret = erasure_secret(settings)
        self._partitions = settings.partitions
        self._segments = load_segments().names

    def tag(self, customer_id: str) -> str:
        """The customer's suppression tag."""
        return suppression_tag(self._secret, customer_id)

    async def erase(self, customer_id: str, at: datetime) -> ErasureReport:
        """Record the suppression (first, so the pipeline skips the id from now on), then
        remove everything held about ``customer_id``."""
        tag = self.tag(customer_id)
        first = bool(await self._client.hsetnx(self._layout.erased, tag, at.isoformat()))
        keys, entries = await self.remove(customer_id)
        entries += await self._pseudonymise_audit(customer_id, tag)
        return ErasureReport(tag, at, first, keys, entries)

    async def remove(self, customer_id: str) -> tuple[int, int]:
        """Delete the customer's keys and index entries: (keys deleted, entries removed)."""
        layout, member = self._layout, customer_id
        index = CustomerIndex.from_bytes(
            await ProfileRecords(self._client).get(layout.profile(member), "ix")
        )
        shared = cast(set[bytes], await self._client.smembers(layout.shared(member)))
        agents = [agent.decode() for agent in shared]
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.delete(*layout.customer_keys(member))
            for command in index_removals(layout, self._segments, member, index, agents):
                pipe.execute_command(*command)
            for p in range(self._partitions):
                pipe.zrem(layout.due(p), member)
                pipe.zrem(layout.due_inflight(p), member)
            replies = await pipe.execute()
        keys, entries = int(replies[0]), sum(int(r) for r in replies[1:])
        for p in range(self._partitions):
            entries += await self._drop_alert_outbox(p, member)
            entries += await self._drop_output_outbox(p, member.encode())
        entries += await self._drop_recent_alerts(member)
        return keys, entries

    async def _drop_alert_outbox(self, partition: int, customer_id: str) -> int:
        key = self._layout.alert_outbox(partition)
        fields = [
            f
            async for f, _ in self._client.hscan_iter(key)
            if bytes(f).startswith(f"{customer_id}{_SEP}".encode())
        ]
        return int(await self._client.hdel(key, *fields)) if fields else 0

    async def _drop_output_outbox(self, partition: int, key_bytes: bytes) -> int:
        """Rewrite the partition's output outbox without the customer's outputs (optimistic:
        retried when a worker changes the hash meanwhile)."""
        key = self._layout.output_outbox(partition)
        while True:
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = cast(dict[bytes, bytes], await pipe.hgetall(key))
                    changes: dict[bytes, bytes] = {}
                    removed = 0
                    for field, blob in raw.items():
                        kept, dropped = _without(blob, key_bytes)
                        if dropped:
                            changes[field], removed = kept, removed + dropped
                    if not changes:
                        await cast(Any, pipe).unwatch()
                        return 0
                    cast(Any, pipe).multi()
                    for field, kept in changes.items():
                        if kept:
                            pipe.hset(key, field, kept)
                        else:
                            pipe.hdel(key, field)
                    await pipe.execute()
                    return removed
                except WatchError:
                    continue

    async def _drop_recent_alerts(self, customer_id: str) -> int:
        key, wanted = self._layout.alerts, customer_id.encode()
        ids = [i async for i, fields in self._entries(key) if fields.get(b"c") == wanted]
        return int(await self._client.xdel(key, *ids)) if ids else 0

    async def _pseudonymise_audit(self, customer_id: str, tag: str) -> int:
        """Audit entries that named the customer are re-added naming ``erased:<tag>`` (their
        ``at`` field keeps when the request was made; their stream ids are new)."""
        key, wanted = self._layout.audit, customer_id.encode()
        alias = f"erased:{tag[:32]}"
        found = [(i, f) async for i, f in self._entries(key) if f.get(b"customer") == wanted]
        if not found:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for _, fields in found:
                text = {k.decode(): v.decode() for k, v in fields.items()}
                text["customer"] = alias
                text["path"] = text.get("path", "").replace(customer_id, alias)
                pipe.xadd(key, cast(Any, text))
            pipe.xdel(key, *(i for i, _ in found))
            await pipe.execute()
        return len(found)

    async def _entries(self, key: str) -> Any:
        """Every entry of stream ``key``, oldest first, read in chunks."""
        start = "-"
        while True:
            chunk = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                await self._client.xrange(key, min=start, count=_CHUNK),
            )
            for entry_id, fields in chunk:
                yield entry_id, fields
            if len(chunk) < _CHUNK:
                return
            start = "(" + chunk[-1][0].decode()


class ErasedCustomers:
    """The suppression records, as the pipeline checks them: is this event's customer erased?

    :meth:`refresh` re-reads the records when their number changed (one ``HLEN`` otherwise);
    without any, :meth:`erased` costs a set lookup and no hash.
    """

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._client = client
        self._key = Layout(settings.redis_key_prefix).erased
        self._settings = settings
        self._secret: bytes | None = None
        self._tags: frozenset[str] = frozenset()
        self._known: dict[str, bool] = {}

    @property
    def count(self) -> int:
        """Suppression records known."""
        return len(self._tags)

    async def refresh(self) -> None:
        """Read the records again if their number changed."""
        if int(await self._client.hlen(self._key)) == len(self._tags):
            return
        tags = cast(list[bytes], await self._client.hkeys(self._key))
        self._tags = frozenset(t.decode() for t in tags)
        self._known = {}
        if self._tags and self._secret is None:
            self._secret = erasure_secret(self._settings)

    def erased(self, customer_id: str) -> bool:
        """Whether ``customer_id`` was erased (as of the last :meth:`refresh`)."""
        if not self._tags or self._secret is None:
            return False
        known = self._known.get(customer_id)
        if known is None:
            if len(self._known) > 100_000:
                self._known = {}
            known = suppression_tag(self._secret, customer_id) in self._tags
            self._known[customer_id] = known
        return known


def _without(blob: bytes, key: bytes) -> tuple[bytes, int]:
    """An output outbox value without the outputs keyed ``key``, and how many were dropped
    (the format of :mod:`streams.state.outbox`: code, length-prefixed key and value)."""
    kept, dropped, at = [], 0, 0
    while at < len(blob):
        start = at
        (n,) = _LENGTH.unpack_from(blob, at + 1)
        this = blob[at + 5 : at + 5 + n]
        at += 5 + n
        (n,) = _LENGTH.unpack_from(blob, at)
        at += 4 + n
        if this == key:
            dropped += 1
        else:
            kept.append(blob[start:at])
    return b"".join(kept), dropped
