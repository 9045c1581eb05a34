"""Redis as the state of record for customer profiles.

Every key carries a hash tag on the customer id (``crm:{c-42}:p``), so all of one customer's keys
live in one Redis Cluster slot and the server-side script may touch them together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisError

from crm_core.errors import StateStoreError
from crm_core.settings import Settings
from scorers.dedup import event_id_hash
from scorers.profile import FIELD_CODES, Profile, ProfileDelta
from scorers.retention import retention_seconds
from streams.state.keys import OFFSET_FIELDS, Layout
from streams.state.records import SCRIPT, ProfileRecords, pairs, read_command
from streams.state.resp import Sent
from streams.state.resp import pack_command as _pack_command
from streams.state.resp_cluster import cluster_seeds, hot_connection, is_cluster_url

__all__ = [
    "ApplyOutcome",
    "ApplyRequest",
    "ApplyResult",
    "InFlight",
    "RedisProfileStore",
    "connect_redis",
    "get_many",
]


# The script's `order` operation names these fields by their codes.
assert [FIELD_CODES[f] for f in ("first_purchase_at", "last_purchase_at", "orders", "gross_minor",
        "purchase_days", "first_day_minor")] == ["fp", "lp", "n", "g", "pd", "fa"]  # fmt: skip


class ApplyOutcome(IntEnum):
    """What the store did with one event."""

    REDELIVERED = 0  # its partition offset was applied before
    APPLIED = 1
    DUPLICATE_ID = 2  # an event with the same id was applied within the dedup window
    BEYOND_WINDOW = 3  # older than the dedup window: cannot be proven new, so not applied
    RECOVERED = 4  # applied before, but its round's walk was never saved: walk it again


class ApplyRequest(NamedTuple):
    """One validated event, reduced to what the store needs."""

    customer_id: str
    kind: str
    offset: int
    event_id: str
    event_time: int
    delta: ProfileDelta


@dataclass(frozen=True, slots=True)
class InFlight:
    """Reads and events written to Redis whose replies are not read yet."""

    reads: int
    applies: int
    sent: Sent | None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome and, when applied (or recovered), the profile right after the event and
    its apply sequence number for the customer (the saved alert state records the last one)."""

    outcome: ApplyOutcome
    profile: Profile | None
    seq: int = 0


def connect_redis(settings: Settings, *, max_connections: int | None = None) -> aioredis.Redis:
    """An asyncio Redis client from settings (password passed through, never logged).

    With ``max_connections`` its requests wait (up to 5 s) for one of that many connections when
    Redis is slow, instead of opening more and more of them (per node on a cluster).

    A cluster URL (``redis+cluster://host:port,...``) gives redis-py's cluster client, typed as
    the plain client whose command methods it answers: it routes each command by its key's slot,
    splits pipelines by node, loads scripts on every master and follows MOVED/ASK. It refuses
    what a cluster cannot do (MULTI over several slots); SCAN it runs on every master.
    """
    password = settings.redis_password
    options: dict[str, Any] = {
        "password": password.get_secret_value() if password else None,
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": min(5.0, settings.redis_timeout_seconds),
        "health_check_interval": 30,
    }
    if is_cluster_url(settings.redis_url):
        seeds = cluster_seeds(settings.redis_url)
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in seeds.nodes],
            username=seeds.username,
            ssl=seeds.tls,
            max_connections=max_connections or 100,
            **{**options, "password": options["password"] or seeds.password},
        )
        return cast(aioredis.Redis, cluster)
    if max_connections is None:
        return aioredis.Redis.from_url(settings.redis_url, **options)
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=max_connections, timeout=5, **options
    )
    return aioredis.Redis(connection_pool=pool)


async def get_many(client: aioredis.Redis, keys: Sequence[str | bytes]) -> list[bytes | None]:
    """``GET`` of each key in one round trip, on one Redis or a cluster (where ``MGET`` must
    name keys of one slot)."""
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
        return cast(list[bytes | None], await pipe.execute())


class RedisProfileStore:
    """Applies events to customer profiles exactly once in effect, in pipelined batches."""

    def __init__(self, client: aioredis.Redis, settings: Settings, key_prefix: str | None = None):
        self._client = client
        self._prefix = key_prefix if key_prefix is not None else settings.redis_key_prefix
        self._keys = Layout(self._prefix)
        self._window = int(settings.dedup_window_days * 86400)
        self._retention = retention_seconds(settings.retention_days) or 0  # 0: off
        self._sha: str | None = None
        self._sent_last: dict[str, tuple[str, int]] = {}  # per customer, of the last pack
        password = settings.redis_password
        self._hot = hot_connection(
            settings.redis_url,
            password.get_secret_value() if password else None,
            settings.redis_timeout_seconds,
        )

    def profile_key(self, customer_id: str) -> str:
        """The profile record of one customer."""
        return self._keys.profile(customer_id)

    def seen_key(self, customer_id: str) -> str:
        """The recently-seen event ids of one customer."""
        return self._keys.seen(customer_id)

    def journal_key(self, customer_id: str) -> str:
        """Profiles after the customer's applied events whose round is not saved yet."""
        return self._keys.journal(customer_id)

    async def _load_script(self) -> str:
        if self._sha is None:
            self._sha = str(await self._client.script_load(SCRIPT))
        return self._sha

    async def apply_batch(self, requests: Sequence[ApplyRequest]) -> list[ApplyResult]:
        """Apply events in order in one round trip; raises StateStoreError if Redis fails.

        Each event is one atomic script call, so a failure part-way leaves every event either
        applied or not, and re-applying the whole batch later is safe (offsets are checked).
        """
        if not requests:
            return []
        try:
            replies = await self._run(await self._load_script(), requests)
            if any(_is_noscript(r) for r in replies):  # Redis restarted and lost its scripts
                self._sha = None
                replies = await self._run(await self._load_script(), requests)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StateStoreError(
                f"Redis did not apply a batch of {len(requests)} events ({exc!r}); "
                "the batch is retried and its offsets stay uncommitted"
            ) from exc
        return [_to_result(reply) for reply in replies]

    async def read_and_apply(
        self,
        read_first: Sequence[str],
        requests: Sequence[ApplyRequest],
        hashes: Sequence[str] = (),
    ) -> tuple[list[dict[bytes | str, bytes | str]], list[ApplyResult]]:
        """Read each profile record of ``read_first`` and HGETALL each key of ``hashes``,
        then apply ``requests``, in one round trip (replies in that order).

        The reads see the state before any of the requests (Redis runs one connection's
        commands in order). Raises StateStoreError if Redis fails; as with :meth:`apply_batch`
        the whole call may be repeated.
        """
        reads = len(read_first) + len(hashes)
        try:
            for _ in range(2):  # a second time when Redis restarted and lost its scripts
                sha = await self._load_script()
                packed = self._pack_reads(sha, read_first, hashes) + self._pack(sha, requests)
                replies = await self._hot.execute(packed, reads + len(requests))
                if not any(_is_noscript(r) for r in replies):
                    break
                self._sha = None
        except (RedisError, OSError, TimeoutError) as exc:
            raise StateStoreError(
                f"Redis did not read {reads} keys and apply {len(requests)} events ({exc!r}); "
                "the round is retried and its offsets stay uncommitted"
            ) from exc
        return await self._results(replies, reads)

    def send_read_and_apply(
        self,
        read_first: Sequence[str],
        requests: Sequence[ApplyRequest],
        hashes: Sequence[str] = (),
    ) -> InFlight:
        """:meth:`read_and_apply`, written now and read later with :meth:`collect`, so Redis
        works on it while the caller finishes the previous round. Sends nothing when the
        connection is down; collect() then raises and the caller repeats the call."""
        sent = None
        reads = len(read_first) + len(hashes)
        if self._sha is not None:
            packed = self._pack_reads(self._sha, read_first, hashes)
            # The round before may still be in flight: its events come first per customer.
            packed += self._pack(self._sha, requests, self._sent_last)
            sent = self._hot.send(packed, reads + len(requests))
        return InFlight(reads, len(requests), sent)

    @staticmethod
    def _pack_reads(sha: str, profiles: Sequence[str], hashes: Sequence[str]) -> bytes:
        packed = [_pack_command(read_command(sha, key)) for key in profiles]
        packed += [_pack_command(("HGETALL", key)) for key in hashes]
        return b"".join(packed)

    async def script(self) -> str:
        """The SHA of the loaded script that applies events and reads and writes records
        (:mod:`streams.state.records`), loading it if needed."""
        return await self._load_script()

    def forget_script(self) -> None:
        """Redis answered NOSCRIPT (it restarted): load the script again on next use."""
        self._sha = None

    def was_lost(self, in_flight: InFlight) -> bool:
        """True when a sent call's replies can no longer be read (repeat it, before anything
        newer is applied, so a customer's events stay in order)."""
        sent = in_flight.sent
        return sent is None or sent.generation != self._hot.generation

    async def collect(
        self, in_flight: InFlight
    ) -> tuple[list[dict[bytes | str, bytes | str]], list[ApplyResult]]:
        """The replies of :meth:`send_read_and_apply`; StateStoreError if they were lost."""
        if in_flight.sent is None:
            raise StateStoreError("the round was not sent: no Redis connection")
        try:
            replies = await self._hot.receive(in_flight.sent)
        except (OSError, TimeoutError) as exc:
            raise StateStoreError(f"lost the replies of a round ({exc!r})") from exc
        if any(_is_noscript(r) for r in replies):
            self._sha = None
            await self._hot.close()  # the next round, sent behind this one, failed the same way
            raise StateStoreError("Redis lost its script cache (restarted?)")
        return await self._results(replies, in_flight.reads)

    async def _results(
        self, replies: list[object], reads: int
    ) -> tuple[list[dict[bytes | str, bytes | str]], list[ApplyResult]]:
        """The profiles read and the events' outcomes; when Redis refused any command (out of
        memory, read-only, ...) StateStoreError, on a closed connection: the round is sent
        again whole on a fresh one, as is whatever was sent behind it."""
        refused = next((r for r in replies if isinstance(r, hiredis.ReplyError)), None)
        if refused is not None:
            await self._hot.close()
            raise StateStoreError(
                f"Redis refused part of a round ({refused}); the round is retried and its "
                "offsets stay uncommitted"
            )
        hashes = [_hash(reply) for reply in replies[:reads]]
        return hashes, [_to_result(reply) for reply in replies[reads:]]

    async def connect(self) -> None:
        """Connect the hot path and load the script, so sends can write at once."""
        await self._load_script()
        await self._hot.connect()

    def _pack(
        self,
        sha: str,
        requests: Sequence[ApplyRequest],
        before: Mapping[str, tuple[str, int]] | None = None,
    ) -> bytes:
        """The script calls of ``requests``, each naming the customer's event sent before it
        (in ``requests``, else in ``before``: customer -> offset field and offset), which must
        have been processed for it to apply (see the script). Remembers the last of each
        customer in :attr:`_sent_last`."""
        last = dict(before or {})
        calls = []
        for req in requests:
            field = OFFSET_FIELDS[req.kind]
            previous = last.get(req.customer_id, ("", 0))
            last[req.customer_id] = (field, req.offset)
            calls.append(_pack_command((
                "EVALSHA",
                sha,
                3,
                self.profile_key(req.customer_id),
                self.seen_key(req.customer_id),
                self.journal_key(req.customer_id),
                field,
                req.offset,
                event_id_hash(req.event_id),
                req.event_time,
                self._window,
                *previous,
                self._retention,
                *req.delta.redis_args(),
            )))  # fmt: skip
        self._sent_last = {req.customer_id: last[req.customer_id] for req in requests}
        return b"".join(calls)

    async def _run(self, sha: str, requests: Sequence[ApplyRequest]) -> list[object]:
        return await self._hot.execute(self._pack(sha, requests), len(requests))

    async def close(self) -> None:
        """Close the hot-path connection (the redis-py client belongs to the caller)."""
        await self._hot.close()

    async def get_profile(self, customer_id: str) -> Profile | None:
        """The stored profile, or None for an unknown customer."""
        raw = await self.read_fields(customer_id)
        return Profile.from_redis(raw) if raw else None

    async def read_fields(self, customer_id: str) -> dict[bytes | str, bytes | str]:
        """Every field of the customer's record (:mod:`streams.state.records`), as bytes."""
        return await ProfileRecords(self._client).read(self.profile_key(customer_id))

    async def write_fields(self, customer_id: str, fields: Mapping[str, bytes | str | int]) -> None:
        """Set fields of the customer's record (tests and tools; rounds save in one write)."""
        await ProfileRecords(self._client).write(self.profile_key(customer_id), fields)


def _is_noscript(reply: object) -> bool:
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT")


def _hash(reply: object) -> dict[bytes | str, bytes | str]:
    if not isinstance(reply, list):
        raise StateStoreError(f"unexpected reply to a read: {reply!r}")
    return pairs(reply)


def _to_result(reply: object) -> ApplyResult:
    if isinstance(reply, hiredis.ReplyError):
        raise StateStoreError(f"the apply script failed: {reply}")
    if not isinstance(reply, list) or not reply:
        raise StateStoreError(f"unexpected reply from the apply script: {reply!r}")
    outcome = ApplyOutcome(int(reply[0]))
    if outcome is not ApplyOutcome.APPLIED and outcome is not ApplyOutcome.RECOVERED:
        return ApplyResult(outcome, None)
    return ApplyResult(outcome, Profile._make(reply[1:-1]), int(reply[-1]))
