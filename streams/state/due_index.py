"""The due-index: per-partition timers in event time, so silence is an event.

(docs/ARCHITECTURE.md, decision 4.)

Every customer has at most one *next due time* per partition: the event time at which its scores
change without any new event (recency crosses an RFM boundary, P(alive) falls under the alert
threshold, a churn label resolves). The index is one Redis sorted set per input partition,
``{prefix}:{due:<partition>}``, member = customer id, score = due time in epoch seconds. The hash
tag is the partition, so one partition's index lives in one Redis Cluster slot and the pop script
touches a single key.

The contract, for the timer that drives it:

- **Pop at the watermark, never the wall clock.** ``until_epoch`` is the partition's event-time
  watermark (:class:`streams.ingest.clock.EventClock`), so a replay of old events pops exactly what
  running live popped, in the same order (score, then customer id).
- **Pop takes; the caller puts back.** :meth:`DueIndex.pop_due` removes what it returns, in one
  atomic script, so two sweepers of the same partition never get the same customer. After
  re-scoring a popped customer the caller :meth:`~DueIndex.schedule` s its *next* due time (or
  ``None`` when nothing more is pending). Popped customers are also parked, with their due time,
  in ``{prefix}:{due:<partition>}:inflight`` until the caller has saved them; a worker that dies
  in between leaves them there, and :mod:`streams.state.recovery` puts them back into the index when
  the partition is assigned again.
- **Cost follows what is due.** A pop is O(log N + k) for k popped out of N scheduled; customers
  not due are never read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crm_core.errors import StateStoreError
from streams.state.keys import Layout

__all__ = ["DueIndex"]

# Members with score <= until form a prefix of the set in rank order (score, then member), so the
# k members ZRANGEBYSCORE -inf..until returns are exactly ranks 0..k-1: removing them by rank is
# O(log N + k) and needs no unpack() of a member list (Lua's unpack has a stack limit).
_POP_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local n = #due / 2
if n > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - 1)
  -- Parked until the caller re-schedules them (streams.state.recovery puts back what a dead
  -- worker left here).
  for i = 1, #due, 2 do redis.call('ZADD', KEYS[2], due[i + 1], due[i]) end
end
return due
"""

#: Members per ZADD / ZREM command in :meth:`DueIndex.schedule` (all sent in one round trip).
_CHUNK = 10_000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _score(value: float, name: str) -> str:
    """A due time as Redis reads it (repr round-trips a float exactly); NaN/inf are refused."""
    if isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite epoch-seconds number, got {value!r}")
    return repr(value) if isinstance(value, float) else str(int(value))


class DueIndex:
    """Next-due times of customers, one Redis sorted set per partition.

    ``client`` is shared with the caller (it is not closed here); it may or may not decode
    responses. Redis failures raise :class:`~crm_core.errors.StateStoreError`.
    """

    def __init__(self, client: aioredis.Redis, key_prefix: str) -> None:
        self._client = client
        self._prefix = key_prefix
        self.keys = Layout(key_prefix)
        self._pop = client.register_script(_POP_SCRIPT)  # EVALSHA, reloaded on NOSCRIPT

    def key(self, partition: int) -> str:
        """The sorted set of ``partition``: ``{prefix}:{due:<partition>}``."""
        return self.keys.due(partition)

    def inflight_key(self, partition: int) -> str:
        """Where popped customers wait (with their due time) until re-scheduled."""
        return self.keys.due_inflight(partition)

    def schedule_commands(
        self, partition: int, items: Sequence[tuple[str, float | None]]
    ) -> list[tuple[str, ...]]:
        """The Redis commands (ZADD / ZREM, chunked) that :meth:`schedule` runs, for a caller
        that packs them with other writes. When a customer appears more than once in ``items``
        the last entry wins. Due times must be finite epoch seconds (ValueError otherwise)."""
        latest: dict[str, str | None] = {}  # customer -> score as sent to Redis
        for customer_id, due in items:
            latest[customer_id] = None if due is None else _score(due, "due_epoch")
        key = self.key(partition)
        due_at = [x for cid, due in latest.items() if due is not None for x in (due, cid)]
        cleared = [cid for cid, due in latest.items() if due is None]
        commands = [
            ("ZADD", key, *due_at[start : start + 2 * _CHUNK])
            for start in range(0, len(due_at), 2 * _CHUNK)
        ]
        commands += [
            ("ZREM", key, *cleared[start : start + _CHUNK])
            for start in range(0, len(cleared), _CHUNK)
        ]
        return commands

    async def schedule(self, partition: int, items: Sequence[tuple[str, float | None]]) -> None:
        """Set (or, for ``None``, clear) the next due time of each customer, in one round trip.

        Idempotent: a customer has at most one due time per partition, and scheduling it again
        replaces it. When a customer appears more than once in ``items`` the last entry wins.
        Due times are epoch seconds in event time (finite numbers; ValueError otherwise).
        """
        commands = self.schedule_commands(partition, items)
        if not commands:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StateStoreError(
                f"Redis did not schedule {len(items)} due times on partition {partition} "
                f"({exc!r}); schedule again (it is idempotent)"
            ) from exc

    async def pop_due(
        self, partition: int, until_epoch: float, limit: int
    ) -> list[tuple[str, float]]:
        """Take at most ``limit`` customers due at or before ``until_epoch``, oldest first.

        ``until_epoch`` is the partition's watermark in epoch seconds, never the wall clock.
        Returned customers are removed atomically (a concurrent pop cannot return them too);
        ties in due time come in customer-id order, so the order is deterministic. The caller
        re-schedules each one after re-scoring it. An empty list means nothing is due.
        """
        if limit <= 0:
            raise ValueError(f"limit must be a positive number of customers, got {limit}")
        until = _score(until_epoch, "until_epoch")
        try:
            flat = await self._pop(
                keys=[self.key(partition), self.inflight_key(partition)], args=[until, limit]
            )
        except (RedisError, OSError) as exc:
            raise StateStoreError(
                f"Redis did not pop due customers of partition {partition} ({exc!r}); if the "
                "script ran before the failure its customers are lost until re-scheduled"
            ) from exc
        return [(_text(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def peek_next(self, partition: int) -> float | None:
        """The earliest due time on ``partition`` (nothing is removed), or None when empty."""
        try:
            head = await self._client.zrange(self.key(partition), 0, 0, withscores=True)
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"Redis did not read the due-index head ({exc!r})") from exc
        return float(head[0][1]) if head else None

    async def backlog(self, partition: int, until_epoch: float) -> int:
        """How many customers are due at or before ``until_epoch`` (the due-backlog metric)."""
        until = _score(until_epoch, "until_epoch")
        try:
            return int(await self._client.zcount(self.key(partition), "-inf", until))
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"Redis did not count the due backlog ({exc!r})") from exc

    async def size(self, partition: int) -> int:
        """How many customers have a due time on ``partition``."""
        try:
            return int(await self._client.zcard(self.key(partition)))
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"Redis did not read the due-index size ({exc!r})") from exc
