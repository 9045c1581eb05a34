"""The Redis side of a round: customers' alert state, the due-index, alert dedup, watermarks.

Keys (all hash-tagged, so the layout works on Redis Cluster):

- ``{prefix}:{<customer>}:p`` field ``as``: the customer's :class:`~scorers.timeline.CustomerState`,
  beside the profile it describes;
- ``{prefix}:{<customer>}:al``: hash of idempotency keys of alerts already published (value: the
  alert's event time), so an episode is never published twice, across restarts and replays;
- ``{prefix}:{due:<partition>}``: the due-index (:class:`streams.due_index.DueIndex`);
- ``{prefix}:{due:<partition>}:wm``: the partition's last watermark (epoch seconds), restored as
  a floor when the partition is assigned again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crm_score.errors import StateStoreError
from scorers.profile import Profile
from scorers.timeline import CustomerState
from streams.due_index import DueIndex
from streams.scoring import CustomerBefore, ScoredRound

__all__ = ["RoundStore"]

_STATE_FIELD = b"as"
_POP_CHUNK = 10_000


class RoundStore:
    """Reads a round's customers before it and writes what it decided after it."""

    def __init__(self, client: aioredis.Redis, key_prefix: str) -> None:
        self._client = client
        self._prefix = key_prefix
        self.due = DueIndex(client, key_prefix)

    def profile_key(self, customer_id: str) -> str:
        """The customer's profile hash (it also holds the alert state)."""
        return f"{self._prefix}:{{{customer_id}}}:p"

    def alerts_key(self, customer_id: str) -> str:
        """Idempotency keys of the customer's published alerts."""
        return f"{self._prefix}:{{{customer_id}}}:al"

    def watermark_key(self, partition: int) -> str:
        """The last watermark of ``partition``."""
        return f"{self.due.key(partition)}:wm"

    async def pop_due(self, watermarks: Mapping[int, int]) -> dict[int, list[str]]:
        """Every customer whose due time is at or before its partition's watermark (removed
        from the index; the round re-schedules each one)."""
        popped: dict[int, list[str]] = {}
        for partition, watermark in watermarks.items():
            while True:
                chunk = await self.due.pop_due(partition, watermark, _POP_CHUNK)
                popped.setdefault(partition, []).extend(c for c, _ in chunk)
                if len(chunk) < _POP_CHUNK:
                    break
        return popped

    async def load(self, customers: Mapping[str, tuple[int, bytes]]) -> dict[str, CustomerBefore]:
        """Profile and alert state of each ``customer -> (partition, message key)``."""
        names = list(customers)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for customer_id in names:
                    pipe.hgetall(self.profile_key(customer_id))
                raws: list[Mapping[bytes | str, bytes | str]] = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"Redis did not return {len(names)} profiles ({exc!r})") from exc
        before = {}
        for customer_id, raw in zip(names, raws, strict=True):
            partition, key = customers[customer_id]
            profile = Profile.from_redis(raw) if raw else None
            state = CustomerState.from_bytes(raw.get(_STATE_FIELD)) if raw else CustomerState()
            before[customer_id] = CustomerBefore(profile, state, partition, key)
        return before

    async def save(self, scored: ScoredRound, watermarks: Mapping[int, float]) -> list[bool]:
        """Write the round's states, due times and watermarks; claim its alerts' idempotency
        keys. Returns, per alert of ``scored.alerts``, whether it is new (publish it)."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for customer_id, state in scored.states.items():
                    pipe.hset(self.profile_key(customer_id), _STATE_FIELD, state.to_bytes())
                for customer_id, key, _ in scored.alerts:
                    pipe.hsetnx(self.alerts_key(customer_id), key, "1")
                for partition, watermark in watermarks.items():
                    pipe.set(self.watermark_key(partition), repr(float(watermark)))
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"Redis did not save the round ({exc!r})") from exc
        for partition, items in scored.due.items():
            await self.due.schedule(partition, items)
        first = len(scored.states)
        return [bool(r) for r in replies[first : first + len(scored.alerts)]]

    async def watermarks(self, partitions: Iterable[int]) -> dict[int, float]:
        """Persisted watermarks of ``partitions`` (those never saved are left out)."""
        wanted = list(partitions)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for partition in wanted:  # one GET each: the keys live in different slots
                    pipe.get(self.watermark_key(partition))
                values = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"Redis did not return the watermarks ({exc!r})") from exc
        return {p: float(v) for p, v in zip(wanted, values, strict=True) if v is not None}
