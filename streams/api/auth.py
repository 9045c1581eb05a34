"""API keys: created once, stored hashed in Redis, checked in constant time.

A key reads ``crm_<key id>_<secret>``: the key id (public, 12 hex digits) finds the record, and
the SHA-256 of the whole key must match the stored digest (``hmac.compare_digest``). The secret
has 256 bits of entropy, so a fast hash is the right tool (a slow password hash only helps
low-entropy secrets). Only the digest, role, department, identity and granted permissions are
stored, in the hash ``{prefix}:{apikeys}`` (field: key id); the key itself is shown once.

Examples
--------
>>> key, record = new_key(Principal("", "agent", identity="agent-7"))
>>> key.startswith("crm_" + record.principal.key_id + "_")
True
>>> record.matches(key), record.matches(key + "x")
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis

from crm_core.errors import ConfigError
from crm_core.settings import Settings
from streams.api.policy import Principal
from streams.api.queries import text
from streams.state.keys import Layout
from streams.state.profiles import connect_redis

__all__ = ["KeyRecord", "KeyStore", "manage_keys", "new_key", "parse_key"]

T = TypeVar("T")
_KEY = re.compile(r"crm_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key(presented: str) -> str | None:
    """The key id of a well-formed key, else None."""
    match = _KEY.fullmatch(presented)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What is stored of a key: its digest and the principal it stands for."""

    principal: Principal
    sha256: str
    created_at: str

    def matches(self, presented: str) -> bool:
        """Whether ``presented`` is this key (constant-time comparison of the digests)."""
        return hmac.compare_digest(_digest(presented), self.sha256)

    def to_json(self) -> bytes:
        """The stored form (no key, only its digest)."""
        p = self.principal
        return orjson.dumps(
            {
                "sha256": self.sha256,
                "role": p.role,
                "department": p.department,
                "identity": p.identity,
                "granted": sorted(p.granted),
                "created_at": self.created_at,
            }
        )

    @classmethod
    def from_json(cls, key_id: str, raw: bytes | str) -> KeyRecord:
        """Read :meth:`to_json`."""
        data: dict[str, Any] = orjson.loads(raw)
        principal = Principal(
            key_id,
            data["role"],
            department=data.get("department"),
            identity=data.get("identity"),
            granted=frozenset(data.get("granted", ())),
        )
        return cls(principal, data["sha256"], data["created_at"])


def new_key(principal: Principal) -> tuple[str, KeyRecord]:
    """A fresh key for ``principal`` (whose key id is replaced) and the record to store."""
    key_id = secrets.token_hex(6)
    key = f"crm_{key_id}_{secrets.token_urlsafe(32)}"
    record = KeyRecord(
        replace(principal, key_id=key_id), _digest(key), datetime.now(UTC).isoformat()
    )
    return key, record


class KeyStore:
    """API keys in Redis, with a short in-process cache (a revoked key keeps working for at
    most ``cache_seconds``)."""

    def __init__(self, client: aioredis.Redis, layout: Layout, cache_seconds: float = 5.0):
        self._client = client
        self._key = layout.api_keys
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    async def create(self, principal: Principal) -> str:
        """Store a new key for ``principal``; returns the key (it is not kept anywhere)."""
        key, record = new_key(principal)
        if not await self._client.hsetnx(self._key, record.principal.key_id, record.to_json()):
            raise ConfigError("key id collision; run the command again")
        return key

    async def revoke(self, key_id: str) -> bool:
        """Delete a key; whether it existed."""
        self._cache.pop(key_id, None)
        return bool(await self._client.hdel(self._key, key_id))

    async def list(self) -> list[KeyRecord]:
        """Every stored key record (digests only)."""
        raw = await self._client.hgetall(self._key)
        return [KeyRecord.from_json(text(k), v) for k, v in sorted(raw.items())]

    async def authenticate(self, presented: str | None) -> Principal | None:
        """The principal of a valid key, else None."""
        key_id = parse_key(presented) if presented else None
        if key_id is None or presented is None:
            return None
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            record = cached[1]
        else:
            raw = await self._client.hget(self._key, key_id)
            record = None if raw is None else KeyRecord.from_json(key_id, raw)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = (now + self._cache_seconds, record)
        if record is None or not record.matches(presented):
            return None
        return record.principal


async def manage_keys(settings: Settings, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    """Run ``action`` on the deployment's key store (for the ``crm-score api-key`` commands)."""
    client = connect_redis(settings)
    try:
        return await action(KeyStore(client, Layout(settings.redis_key_prefix), 0.0))
    finally:
        await client.aclose()
