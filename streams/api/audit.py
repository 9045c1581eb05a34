"""The audit trail: every API read, appended to a Redis stream (``{prefix}:{audit}``).

Each entry says who (key id and role; ``-`` without a valid key), what (method, path, customer
if one was asked for), when (wall-clock UTC) and the decision: ``allowed``, ``not_found`` (no
such customer, or outside the caller's scope: the caller is told 404 either way, the trail tells
them apart as ``denied``), ``forbidden`` (the key lacks a permission) or ``unauthenticated``.
The stream is append-only; it is trimmed (approximately) to ``CRM_API_AUDIT_MAXLEN`` entries,
0 keeps everything.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

import redis.asyncio as aioredis

from streams.api.guard import clip
from streams.api.policy import Principal
from streams.state.keys import Layout

__all__ = ["AuditEntry", "AuditLog", "Decision"]

Decision = Literal["allowed", "denied", "not_found", "forbidden", "unauthenticated"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited request."""

    at: datetime
    key_id: str
    role: str
    method: str
    path: str
    customer: str | None
    decision: Decision
    status: int
    entry_id: str = ""

    def fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        return {
            "at": self.at.isoformat(),
            "key": self.key_id,
            "role": self.role,
            "method": self.method,
            "path": self.path,
            "customer": self.customer or "",
            "decision": self.decision,
            "status": str(self.status),
        }

    @classmethod
    def from_fields(cls, entry_id: str, fields: dict[str, str]) -> AuditEntry:
        """Read :meth:`fields` back."""
        decision: Decision = fields["decision"]  # type: ignore[assignment]
        return cls(
            at=datetime.fromisoformat(fields["at"]),
            key_id=fields["key"],
            role=fields["role"],
            method=fields["method"],
            path=fields["path"],
            customer=fields["customer"] or None,
            decision=decision,
            status=int(fields["status"]),
            entry_id=entry_id,
        )


class AuditLog:
    """Appends and reads the audit stream.

    Concurrent requests share writes (group commit): the first to arrive writes every entry
    queued so far in one pipelined round trip, and each request waits until its own entry is
    in Redis.
    """

    def __init__(self, client: aioredis.Redis, layout: Layout, maxlen: int = 1_000_000) -> None:
        self._client = client
        self._key = layout.audit
        self._maxlen = maxlen or None
        self._queue: list[tuple[dict[str, str], asyncio.Future[None]]] = []
        self._writing = False

    async def record(
        self,
        principal: Principal | None,
        method: str,
        path: str,
        customer: str | None,
        decision: Decision,
        status: int,
    ) -> None:
        """Append one entry (awaited: a read is not answered before it is audited). The
        client's strings (method, path, customer) are cut to 16, 256 and 128 characters."""
        entry = AuditEntry(
            datetime.now(UTC),
            principal.key_id if principal else "-",
            principal.role if principal else "-",
            clip(method, 16),
            clip(path),
            None if customer is None else clip(customer, 128),
            decision,
            status,
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((entry.fields(), done))
        if not self._writing:
            self._writing = True
            try:
                await self._write_queued()
            finally:
                self._writing = False
        await done

    async def _write_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for fields, _ in batch:
                        pipe.xadd(self._key, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
                    await pipe.execute()
            except Exception as exc:  # every waiter gets the failure (its request fails)
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for _, done in batch:
                done.set_result(None)

    async def read(self, count: int = 100) -> list[AuditEntry]:
        """The newest ``count`` entries, oldest first."""
        raw = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._client.xrevrange(self._key, count=count),
        )
        entries = []
        for entry_id, fields in reversed(raw):
            decoded = {k.decode(): v.decode() for k, v in fields.items()}
            entries.append(AuditEntry.from_fields(entry_id.decode(), decoded))
        return entries
