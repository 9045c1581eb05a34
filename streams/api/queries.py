"""The query API's reads from Redis, each filtered to a caller's :class:`~streams.api.policy.Scope`.

Admins read the indexes directly. An agent's scope is small (the customers it owns or was
given: two sets), so its listings are computed from those. A manager's scope is a share of the
whole base: listings walk the segment's sorted set and keep what is in scope, reading at most
``scan_budget`` entries per page (a page may hold fewer than ``limit`` customers; follow
``next_cursor`` until it is ``None``). Cursors are positions in the sorted set, so a listing
that changes while it is read may repeat or skip a customer, as with any live index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from scorers.profile import Profile
from scorers.value_groups import VALUE_GROUPS
from streams.api.policy import CustomerAccess, Scope
from streams.state.keys import SORTS, Layout, Sort
from streams.state.pii import PLAIN, PiiCipher
from streams.state.query_index import CustomerIndex
from streams.state.records import ProfileRecords, pairs
from streams.state.snapshots import unpack as unpack_snapshot

__all__ = ["CustomerRecord", "Page", "Queries", "access_of", "text"]

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """Everything stored about one customer."""

    customer_id: str
    profile: Profile
    index: CustomerIndex
    snapshot: dict[str, Any] | None
    contact: dict[str, str | None] | None
    shared_with: frozenset[str]

    @property
    def access(self) -> CustomerAccess:
        """The facts a scope decision needs."""
        return access_of(self.index, self.shared_with)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def access_of(index: CustomerIndex, shared_with: frozenset[str] = frozenset()) -> CustomerAccess:
    """The facts a scope decision needs about a customer with ``index``."""
    return CustomerAccess(
        departments=frozenset(index.departments.values()),
        owner=index.owner,
        shared_with=shared_with,
    )


def text(value: object) -> str:
    """A Redis reply as text (the client returns bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _score(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if number == float("-inf") else number


class Queries:
    """Reads for the API handlers."""

    def __init__(
        self,
        client: aioredis.Redis,
        layout: Layout,
        segments: Sequence[str],
        scan_budget: int = 5000,
        pii: PiiCipher = PLAIN,
    ) -> None:
        self._client = client
        self._pii = pii
        self._records = ProfileRecords(client)
        self.layout = layout
        self.segments = list(segments)
        self._budget = scan_budget

    async def customer(self, customer_id: str) -> CustomerRecord | None:
        """The customer's profile, index, latest snapshot, contact (decrypted) and shares (one
        round trip), or None if it has no profile."""
        layout = self.layout
        async with self._client.pipeline(transaction=False) as pipe:
            await self._records.queue_read(pipe, layout.profile(customer_id))
            pipe.get(layout.snapshot(customer_id))
            pipe.get(layout.contact(customer_id))
            pipe.smembers(layout.shared(customer_id))
            reply, snapshot, contact, shared = await pipe.execute()
        raw = pairs(reply)
        if not raw:
            return None
        return CustomerRecord(
            customer_id,
            Profile.from_redis(raw),
            CustomerIndex.from_bytes(raw.get(b"ix")),
            unpack_snapshot(snapshot) if snapshot else None,
            orjson.loads(self._pii.open(customer_id, contact)) if contact else None,
            frozenset(text(s) for s in shared),
        )

    async def allowed(self, scope: Scope, customers: Sequence[str]) -> dict[str, CustomerIndex]:
        """The customers of ``customers`` in ``scope``, with their indexes."""
        if not customers:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for c in customers:
                await self._records.queue_get(pipe, self.layout.profile(c), "ix")
                pipe.smembers(self.layout.shared(c))
            replies = await pipe.execute()
        out = {}
        for i, c in enumerate(customers):
            index = CustomerIndex.from_bytes(replies[2 * i])
            shared = frozenset(text(s) for s in replies[2 * i + 1])
            if scope.allows(access_of(index, shared)):
                out[c] = index
        return out

    async def _agent_customers(self, scope: Scope) -> dict[str, CustomerIndex]:
        identity = scope.principal.identity or ""
        layout = self.layout
        members = await self._client.sunion(
            [layout.agent(identity, "owned"), layout.agent(identity, "shared")]
        )
        return await self.allowed(scope, sorted(text(m) for m in members))

    async def segment_counts(self, scope: Scope) -> dict[str, int]:
        """Customers per segment in ``scope``."""
        keys = {name: self.layout.segment(name, "clv") for name in self.segments}
        return await self._counts(scope, keys, lambda index: index.segment)

    async def value_group_counts(self, scope: Scope) -> dict[str, int]:
        """Customers per value x risk group in ``scope``."""
        keys = {name: self.layout.value_group(name) for name in VALUE_GROUPS}
        return await self._counts(scope, keys, lambda index: index.value_group)

    async def cluster_counts(self, clusters: int) -> list[int]:
        """Customers per exploratory cluster ``0 .. clusters - 1`` (the whole base)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for k in range(clusters):
                pipe.zcard(self.layout.cluster(k))
            return [int(n) for n in await pipe.execute()]

    async def _counts(
        self,
        scope: Scope,
        keys: Mapping[str, str],
        member_of: Callable[[CustomerIndex], str | None],
    ) -> dict[str, int]:
        """Members of each set of ``keys`` in ``scope``; ``member_of`` says which set a
        customer's index puts it in (an agent's customers are counted from their indexes)."""
        counts = dict.fromkeys(keys, 0)
        if scope.everything:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys.values():
                    pipe.zcard(key)
                return dict(zip(keys, map(int, await pipe.execute()), strict=True))
        if scope.principal.role == "agent":
            for index in (await self._agent_customers(scope)).values():
                name = member_of(index)
                if name in counts:
                    counts[name] += 1
            return counts
        for name, key in keys.items():
            start = 0
            while True:
                chunk = await self._client.zrange(key, start, start + _CHUNK - 1)
                for index in (await self.allowed(scope, [text(m) for m in chunk])).values():
                    counts[name] += member_of(index) == name
                if len(chunk) < _CHUNK:
                    break
                start += _CHUNK
        return counts

    async def segment_members(
        self, scope: Scope, segment: str, sort: Sort, cursor: int, limit: int
    ) -> Page:
        """A page of the segment's customers in ``scope``, highest ``sort`` first."""
        key = self.layout.segment(segment, sort)
        if scope.principal.role == "agent":
            mine = [
                c for c, i in (await self._agent_customers(scope)).items() if i.segment == segment
            ]
            scores = await self._client.zmscore(key, mine) if mine else []
            ranked = sorted(
                zip(mine, scores, strict=True), key=lambda cs: (-(_score(cs[1]) or -1e300), cs[0])
            )
            page = [c for c, _ in ranked[cursor : cursor + limit]]
            more = cursor + limit < len(ranked)
            return Page(await self._items(segment, page), str(cursor + limit) if more else None)
        total = int(await self._client.zcard(key))
        end = min(total, cursor + (limit if scope.everything else self._budget))
        picked: list[str] = []
        position = cursor
        while len(picked) < limit and position < end:
            size = limit - len(picked) if scope.everything else _CHUNK
            last = min(position + size, end) - 1
            chunk = [text(m) for m in await self._client.zrange(key, position, last, desc=True)]
            if not chunk:
                break
            kept = set(chunk) if scope.everything else set(await self.allowed(scope, chunk))
            for c in chunk:
                position += 1
                if c in kept:
                    picked.append(c)
                    if len(picked) == limit:
                        break
        next_cursor = str(position) if position < total else None
        return Page(await self._items(segment, picked), next_cursor)

    async def _items(self, segment: str, customers: list[str]) -> list[dict[str, Any]]:
        if not customers:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for sort in SORTS:
                pipe.zmscore(self.layout.segment(segment, sort), customers)
            clv, churn = await pipe.execute()
        return [
            {"customer_id": c, "segment": segment, "clv": _score(v), "churn_probability": _score(p)}
            for c, v, p in zip(customers, clv, churn, strict=True)
        ]

    async def recent_alerts(
        self, scope: Scope, alert_type: str | None, limit: int, scan: int = 10_000
    ) -> list[dict[str, Any]]:
        """The newest alerts in ``scope`` (of ``alert_type`` if given), newest first."""
        found: list[dict[str, Any]] = []
        upper, scanned = "+", 0
        while len(found) < limit and scanned < scan:
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                await self._client.xrevrange(self.layout.alerts, upper, "-", count=_CHUNK),
            )
            if not entries:
                break
            scanned += len(entries)
            upper = "(" + entries[-1][0].decode()  # exclusive: older than the last one read
            wanted = [
                (i.decode(), f)
                for i, f in entries
                if alert_type is None or f[b"t"].decode() == alert_type
            ]
            customers = [f[b"c"].decode() for _, f in wanted]
            visible = (
                set(customers) if scope.everything else set(await self.allowed(scope, customers))
            )
            for entry_id, fields in wanted:
                if fields[b"c"].decode() in visible:
                    found.append({"id": entry_id, **orjson.loads(fields[b"a"])})
                    if len(found) == limit:
                        break
        return found

    async def share(self, customer_id: str, identity: str) -> None:
        """Share a customer with an agent."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.sadd(self.layout.shared(customer_id), identity)
            pipe.sadd(self.layout.agent(identity, "shared"), customer_id)
            await pipe.execute()
