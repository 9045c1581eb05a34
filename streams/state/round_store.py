"""The Redis side of a round: customers' alert state, the due-index, alert dedup, watermarks.

Keys (all hash-tagged, so the layout works on Redis Cluster):

- ``{prefix}:{<customer>}:p`` field ``as``: the customer's :class:`~scorers.timeline.CustomerState`,
  beside the profile it describes;
- ``{prefix}:{<customer>}:al``: hash of idempotency keys of alerts already published (value: the
  alert's event time), so an episode is never published twice, across restarts and replays;
- ``{prefix}:{due:<partition>}``: the due-index (:class:`streams.state.due_index.DueIndex`);
- ``{prefix}:{due:<partition>}:wm``: the partition's last watermark (epoch seconds), restored as
  a floor when the partition is assigned again.

A round killed between its apply and its save is redone on restart; the journal, the parked
timers and the alert outbox that make that possible are :mod:`streams.state.recovery`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import hiredis
import redis.asyncio as aioredis

from crm_core.errors import StateStoreError
from crm_core.settings import Settings
from schemas import Event
from scorers.profile import Profile
from scorers.timeline import CustomerState
from streams.round.messages import Applied, OutputMessage
from streams.round.scorer import CustomerBefore, ScoredRound
from streams.state.cross_sell_counts import CrossSellDecision, CrossSellReads, CrossSellRound
from streams.state.due_index import DueIndex
from streams.state.keys import Layout
from streams.state.pii import MAKE_KEY, PiiCipher
from streams.state.profiles import ApplyRequest, ApplyResult, InFlight, RedisProfileStore
from streams.state.query_index import CustomerIndex, RoundIndexer
from streams.state.records import write_command
from streams.state.recovery import RoundRecovery
from streams.state.resp import Command, pack_command
from streams.state.resp_cluster import hot_connection
from streams.state.retention import RetentionCleaner

__all__ = ["PendingRound", "RoundStore"]

log = logging.getLogger(__name__)
_STATE_FIELD = b"as"
_JOURNAL_MARK = b"jw"  # the apply number the saved state includes (streams.state.recovery)
_INDEX_FIELD = b"ix"  # the query API's view of the customer (streams.state.query_index)
_POP_CHUNK = 10_000
_NO_CROSS_SELL = CrossSellReads()  # a round without orders (or with cross-sell disabled)


class RoundStore:
    """Reads a round's customers before it and writes what it decided after it.

    Reads and writes are packed into one write each on hiredis connections (redis-py's
    per-command awaits cost more than the round's scoring): the reads ride with the round's
    events on the store's connection, the saves have their own.
    """

    def __init__(
        self, client: aioredis.Redis, store: RedisProfileStore, settings: Settings
    ) -> None:
        self._client = client
        self._store = store
        self._prefix = settings.redis_key_prefix
        self.due = DueIndex(client, self._prefix)
        self.cross_sell = (
            CrossSellRound.from_settings(settings) if settings.cross_sell_enabled else None
        )
        self._cross_sell_read: (
            tuple[CrossSellReads, list[dict[bytes | str, bytes | str]]] | None
        ) = None
        self.recovery = RoundRecovery(self._prefix, self.due)
        self._layout = Layout(self._prefix)
        self.pii = PiiCipher.from_settings(settings)  # ConfigError: production without keys
        if self.pii.current is None:
            log.warning("PII encryption %s; set CRM_PII_KEYS (%s)", self.pii.status, MAKE_KEY)
        self._indexer = RoundIndexer(self._layout, self.pii)
        self._retention = RetentionCleaner(self._layout)
        self.retention_removed = 0  # customers whose expired data the last save removed
        self._recent_alerts = settings.api_recent_alerts
        self._index_before: dict[str, CustomerIndex] = {}  # of the round collected last
        self._index_saved: dict[str, CustomerIndex] = {}  # what the last save changed
        password = settings.redis_password
        # Saves go on their own connection: the store's may hold the next round's reads,
        # whose replies must be read first.
        self._writer = hot_connection(
            settings.redis_url,
            password.get_secret_value() if password else None,
            settings.redis_timeout_seconds,
        )
        self._writing = asyncio.Lock()

    async def close(self) -> None:
        """Close the save connection."""
        await self._writer.close()

    def profile_key(self, customer_id: str) -> str:
        """The customer's profile record (it also holds the alert state)."""
        return self._layout.profile(customer_id)

    def alerts_key(self, customer_id: str) -> str:
        """Idempotency keys of the customer's published alerts."""
        return self._layout.alert_claims(customer_id)

    def watermark_key(self, partition: int) -> str:
        """The last watermark of ``partition``."""
        return self._layout.watermark(partition)

    async def pop_due(self, limits: Mapping[int, int]) -> dict[int, list[str]]:
        """Every customer whose due time is at or before its partition's limit (removed from
        the index; the round re-schedules each one)."""
        popped: dict[int, list[str]] = {}
        for partition, limit in limits.items():
            while True:
                chunk = await self.due.pop_due(partition, limit, _POP_CHUNK)
                popped.setdefault(partition, []).extend(c for c, _ in chunk)
                if len(chunk) < _POP_CHUNK:
                    break
        return popped

    def send(
        self,
        customers: Mapping[str, int],
        requests: Sequence[ApplyRequest],
        events: Iterable[Event] = (),
    ) -> PendingRound:
        """Start reading each customer's profile and alert state as they were before the round
        (``customer -> partition``), and the cross-sell counters of the round's ``events``, and
        applying its events; :meth:`collect` reads the answers."""
        xs = self._cross_sell_reads(events)
        keys = [self.profile_key(c) for c in customers]
        in_flight = self._store.send_read_and_apply(keys, requests, list(xs.keys))
        return PendingRound(dict(customers), list(requests), in_flight, xs)

    def _cross_sell_reads(self, events: Iterable[Event]) -> CrossSellReads:
        if self.cross_sell is None:
            return _NO_CROSS_SELL
        return self.cross_sell.read_keys(events)

    def cross_sell_decide(self, applied: Sequence[Applied]) -> CrossSellDecision | None:
        """The cross-sell suggestions and writes of the round collected last (None when
        disabled)."""
        if self.cross_sell is None or self._cross_sell_read is None:
            return None
        reads, raws = self._cross_sell_read
        self._cross_sell_read = None
        return self.cross_sell.decide(reads, raws, applied)

    def was_lost(self, pending: PendingRound) -> bool:
        """Whether ``pending`` must be sent again (see RedisProfileStore.was_lost)."""
        return self._store.was_lost(pending.in_flight)

    async def collect(
        self, pending: PendingRound
    ) -> tuple[dict[str, CustomerBefore], list[ApplyResult]]:
        """The customers before the round and the events' outcomes; StateStoreError if the
        replies were lost (then :meth:`load_and_apply` does it again)."""
        raws, outcomes = await self._store.collect(pending.in_flight)
        n = len(pending.customers)
        raws, self._cross_sell_read = raws[:n], (pending.cross_sell, raws[n:])
        raws = await self._rebased(list(pending.customers), raws)
        outcomes = self.recovery.already_walked(pending.requests, outcomes)
        self.recovery.note_applied(pending.requests, outcomes)
        return self._before(pending.customers, raws), outcomes

    async def load_and_apply(
        self,
        customers: Mapping[str, int],
        requests: Sequence[ApplyRequest],
        cross_sell: CrossSellReads | None = None,
    ) -> tuple[dict[str, CustomerBefore], list[ApplyResult]]:
        """:meth:`send` and :meth:`collect` in one go, on a (re)connected connection."""
        xs = cross_sell if cross_sell is not None else _NO_CROSS_SELL
        self._cross_sell_read = (xs, [])
        if not customers and not requests:
            return {}, []
        raws, outcomes = await self._store.read_and_apply(
            [self.profile_key(c) for c in customers], requests, list(xs.keys)
        )
        n = len(customers)
        raws, self._cross_sell_read = raws[:n], (xs, raws[n:])
        raws = await self._rebased(list(customers), raws)
        outcomes = self.recovery.already_walked(requests, outcomes)
        self.recovery.note_applied(requests, outcomes)
        return self._before(customers, raws), outcomes

    async def _rebased(
        self, customers: list[str], raws: list[dict[bytes | str, bytes | str]]
    ) -> list[dict[bytes | str, bytes | str]]:
        """Profiles that hold events a lost round applied but never walked, as they were
        before those events (streams.state.recovery); the rest as read."""
        stale = self.recovery.stale(customers, raws)
        if not stale:
            return raws
        replies = await self._execute([self.recovery.journal_read(c) for c in stale])
        journals = dict(zip(stale, replies, strict=True))
        return [
            self.recovery.rebase(raw, journals[c], stale[c]) if c in journals else raw
            for c, raw in zip(customers, raws, strict=True)
        ]

    def _before(
        self, customers: Mapping[str, int], raws: list[dict[bytes | str, bytes | str]]
    ) -> dict[str, CustomerBefore]:
        before = {}
        # As with alert states, the last save may have landed after these reads.
        saved = self._index_saved
        self._index_before = {
            c: saved.get(c) or CustomerIndex.from_bytes(raw.get(_INDEX_FIELD))
            for c, raw in zip(customers, raws, strict=True)
        }
        for customer_id, raw in zip(customers, raws, strict=True):
            profile = Profile.from_redis(raw) if raw else None
            state = CustomerState.from_bytes(raw.get(_STATE_FIELD)) if raw else CustomerState()
            before[customer_id] = CustomerBefore(profile, state, customers[customer_id])
        return before

    async def save(
        self,
        scored: ScoredRound,
        watermarks: Mapping[int, float],
        applied: Sequence[Applied] = (),
        cross_sell: CrossSellDecision | None = None,
    ) -> list[bool]:
        """Write the round's states, due times and watermarks, and the query API's view
        (latest snapshots, segment indexes, departments/owner/contact from ``applied``); claim
        its alerts' idempotency keys. Returns, per alert of ``scored.alerts``, whether it is new
        (publish it)."""
        recovery = self.recovery  # the order below is what a save cut short relies on
        if scored.reset:  # old data an event found expired goes before the new is indexed
            await self._retire(sorted(scored.reset), {})
            self._index_before.update(dict.fromkeys(scored.reset, CustomerIndex()))
        indexes, commands = self._indexer.commands(self._index_before, applied, scored.snapshots)
        commands = recovery.before_save(scored) + commands  # outbox, due times
        fields: dict[str, dict[bytes, bytes | int]] = {
            c: {_STATE_FIELD: state.to_bytes()} for c, state in scored.states.items()
        }
        for c, index in indexes.items():
            fields.setdefault(c, {})[_INDEX_FIELD] = index.to_bytes()
        for c, seq in recovery.marks().items():  # the journal number the state includes
            fields.setdefault(c, {})[_JOURNAL_MARK] = seq
        sha = await self._store.script()  # the record's fields are set by its script
        commands += [write_command(sha, self.profile_key(c), f) for c, f in fields.items()]
        first_alert = len(commands)
        commands += recovery.claim_commands(scored.alerts)
        if cross_sell is not None:  # counters first, then the customers' sets (see its doc)
            commands += cross_sell.commands()
        commands += [("SET", self.watermark_key(p), repr(float(w))) for p, w in watermarks.items()]
        replies = await self._execute(commands)
        failed = [r for r in replies if isinstance(r, hiredis.ReplyError)]
        if failed:
            if any(str(r).startswith("NOSCRIPT") for r in failed):
                self._store.forget_script()  # Redis restarted: the retry loads it again
            raise StateStoreError(f"Redis refused part of the round's save: {failed[0]}")
        # Deletions only once every write above took: Redis out of memory refuses writes but
        # not deletions, and parked timers or journal entries dropped beside a refused state
        # would be lost to a crash before the retry.
        await self.run(recovery.after_save(scored))
        removed = await self._retire(list(scored.expired), scored.expired)
        self._index_saved = {c: i for c, i in indexes.items() if c not in scored.expired}
        self.retention_removed = removed + len(scored.reset)
        if self.retention_removed:
            await self.run([self._retention.audit_command(removed, len(scored.reset))])
        recovery.saved()
        return recovery.fresh(replies[first_alert : first_alert + 2 * len(scored.alerts)])

    async def _retire(self, customers: list[str], expired: Mapping[str, tuple[int, int]]) -> int:
        """Remove the data of customers whose data expired (``expired``: all of it, unless a
        newer event came; else the old data of ``customers`` that start afresh); how many."""
        if not customers:
            return 0
        cleaner = self._retention
        scripts = cleaner.script_commands(() if expired else customers, expired)
        replies = await self._execute(scripts)
        drops, removed = cleaner.index_commands(customers, replies)
        await self.run(drops)
        failed = [r for r in replies if isinstance(r, hiredis.ReplyError)]
        if failed:
            raise StateStoreError(f"Redis refused a retention removal: {failed[0]}")
        return removed

    async def recover(self, partitions: Iterable[int]) -> dict[int, list[tuple[str, str, bytes]]]:
        """A partition was assigned: put back the timers a dead worker had popped, and return
        the alerts ``(customer, key, JSON)`` of its outbox never confirmed (publish them)."""
        recovery, wanted = self.recovery, sorted(partitions)
        commands = [c for p in wanted for c in recovery.restore_commands(p)]
        replies = await self._execute(commands + [recovery.outbox_read(p) for p in wanted])
        again: dict[int, list[tuple[str, str, bytes]]] = {}
        for partition, outbox in zip(wanted, replies[len(commands) :], strict=True):
            entries, reads = recovery.unpublished(partition, outbox)
            if not entries:
                continue
            claims = await self._execute(reads)
            again[partition], drops = recovery.drop_confirmed(partition, entries, claims)
            await self._execute(drops)
        failed = [r for r in replies if isinstance(r, hiredis.ReplyError)]
        if failed:
            raise StateStoreError(f"Redis refused the partition recovery: {failed[0]}")
        return again

    async def unsent_outputs(
        self, partitions: Iterable[int]
    ) -> list[tuple[dict[str, list[OutputMessage]], list[Command]]]:
        """Per partition, the score snapshots and training examples a dead worker saved but
        Kafka never acknowledged (by topic name), and the commands that delete them once
        published again (:meth:`run`)."""
        outbox, wanted = self.recovery.outputs, sorted(partitions)
        replies = await self._execute([outbox.read_command(p) for p in wanted])
        found = [outbox.unsent(p, reply) for p, reply in zip(wanted, replies, strict=True)]
        return [(messages, drops) for messages, drops in found if drops]

    async def run(self, commands: Sequence[Command]) -> None:
        """Run ``commands`` on the save connection; StateStoreError if Redis refused one."""
        failed = [r for r in await self._execute(commands) if isinstance(r, hiredis.ReplyError)]
        if failed:
            raise StateStoreError(f"Redis refused a command: {failed[0]}")

    async def confirm(self) -> None:
        """Confirm the alerts and drop the outputs Kafka acknowledged since the last save
        (before partitions are given up, and at shutdown), so their next owner does not
        publish them again."""
        await self.run(self.recovery.confirm_commands())
        self.recovery.confirmed()

    async def record_alerts(self, alerts: Sequence[tuple[str, str, bytes]]) -> None:
        """Append published alerts ``(customer, type, JSON)`` to the capped stream of recent
        alerts that the query API reads (``{prefix}:{alerts}``)."""
        key, cap = self._layout.alerts, self._recent_alerts
        commands: list[tuple[str | bytes | int, ...]] = [
            ("XADD", key, "MAXLEN", "~", cap, "*", "t", kind, "c", customer, "a", value)
            for customer, kind, value in alerts
        ]
        await self.run(commands)

    async def watermarks(self, partitions: Iterable[int]) -> dict[int, float]:
        """Persisted watermarks of ``partitions`` (those never saved are left out)."""
        wanted = list(partitions)
        values = await self._execute([("GET", self.watermark_key(p)) for p in wanted])
        return {p: float(v) for p, v in zip(wanted, values, strict=True) if isinstance(v, bytes)}

    async def _execute(self, commands: Sequence[tuple[str | bytes | int, ...]]) -> list[object]:
        if not commands:
            return []
        packed = b"".join(pack_command(command) for command in commands)
        try:
            async with self._writing:  # rebalance hooks save too, beside the round in progress
                return await self._writer.execute(packed, len(commands))
        except (OSError, TimeoutError) as exc:
            raise StateStoreError(f"Redis did not run {len(commands)} commands ({exc!r})") from exc


@dataclass(frozen=True, slots=True)
class PendingRound:
    """A round's reads and events sent to Redis, answers not read yet."""

    customers: dict[str, int]
    requests: list[ApplyRequest]
    in_flight: InFlight
    cross_sell: CrossSellReads = _NO_CROSS_SELL
