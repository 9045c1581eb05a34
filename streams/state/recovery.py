"""What makes a round's save survive a worker killed between applying the round and saving it.

A round first applies its events to Redis (the profiles), then walks its customers and saves
what the walk decided: alert states, due times, alert idempotency keys; then publishes and
commits. A worker killed in between used to lose that round's walk for good: its events were
redelivered but already applied (so never walked again), the customers it had popped from the
due-index were gone from it, and alerts claimed but not yet published were never published.
Three pieces close those gaps, each keyed so the layout works on Redis Cluster:

- **Journal** ``{prefix}:{<customer>}:j``: the apply script numbers each applied event per
  customer (profile field ``ja``) and keeps the profile right after it, until the round is
  saved; the save records in the profile, in the same ``HSET`` as the alert state, the number
  that state includes (``jw``). A redelivered event journaled after ``jw`` comes back as
  ``RECOVERED`` with its profile, so the restarted worker walks it again from the saved state
  (giving the same checkpoints and alerts); saved entries are deleted.
- **In-flight timers** ``{prefix}:{due:<p>}:inflight``: the due-index pop parks what it takes
  there; the save removes them once their next due times are written. When a partition is
  assigned, whatever is parked goes back to the index (its old due time, so the next round pops
  it again and walks it from its saved state; walking a customer again is harmless).
- **Outbox** ``{prefix}:{due:<p>}:out``: a round's alerts are written there before the save
  claims their idempotency keys (value ``p``, pending); a key is confirmed (``1``) and its
  outbox entry dropped only after Kafka acknowledged the alert. A claim still pending is
  published again (same key: consumers drop repeats), and when a partition is assigned its
  outbox is published again, so an alert is never lost, only possibly repeated. The round's
  score snapshots and training examples have their own outbox (:mod:`streams.state.outbox`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from scorers.profile import FIELD_CODES, FIELD_ORDER
from streams.round.messages import OutputMessage
from streams.round.scorer import ScoredRound
from streams.state.acks import AwaitingAcks
from streams.state.due_index import DueIndex
from streams.state.keys import OFFSET_FIELDS
from streams.state.outbox import OutputOutbox
from streams.state.profiles import ApplyOutcome, ApplyRequest, ApplyResult
from streams.state.resp import Command

__all__ = ["RoundRecovery", "claim_confirmation"]

_PENDING = b"p"
_CONFIRMED = b"1"
_SEP = "\x00"
_REDELIVERED = ApplyResult(ApplyOutcome.REDELIVERED, None)
_CODES_IN_ORDER = [FIELD_CODES[name].encode() for name in FIELD_ORDER]
_PROFILE_CODES: frozenset[bytes | str] = frozenset(_CODES_IN_ORDER)

# Put parked timers back into the index; a customer in both keeps the earlier time.
# Confirms an alert's claim only while the customer's claims exist: an erasure or a retention
# removal that deleted them since must not bring the customer's key back.
_CONFIRM_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
"""
_RESTORE_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local n = redis.call('ZCARD', KEYS[2])
redis.call('ZUNIONSTORE', KEYS[1], 2, KEYS[1], KEYS[2], 'AGGREGATE', 'MIN')
redis.call('DEL', KEYS[2])
return n
"""


def claim_confirmation(claims_key: str, alert_key: str) -> Command:
    """Mark an alert's claim confirmed, only while the customer's claims exist (an erasure or
    a retention removal that deleted them since must not bring the key back)."""
    return ("EVAL", _CONFIRM_SCRIPT, 1, claims_key, alert_key, _CONFIRMED)


class RoundRecovery:
    """Journal marks, outbox and in-flight timers of one worker's rounds (see module doc).

    ``publishing=False`` (a rebuild, which publishes nothing) claims alert keys as confirmed
    and keeps no outbox.
    """

    def __init__(self, prefix: str, due: DueIndex, *, publishing: bool = True) -> None:
        self._prefix = prefix
        self._due = due
        self.publishing = publishing
        self._marks: dict[str, tuple[int, list[str]]] = {}  # customer -> (last seq, entries)
        self._saved: dict[str, int] = {}  # the marks of the last save (it may land after reads)
        self._unconfirmed: AwaitingAcks[list[tuple[int, str, str]]] = AwaitingAcks()
        self.outputs = OutputOutbox(due)  # score snapshots and training examples

    def outbox_key(self, partition: int) -> str:
        return self._due.keys.alert_outbox(partition)

    def _alerts_key(self, customer_id: str) -> str:
        return self._due.keys.alert_claims(customer_id)

    def _journal_key(self, customer_id: str) -> str:
        return self._due.keys.journal(customer_id)

    # --- a round -------------------------------------------------------------------------------
    def note_applied(
        self, requests: Sequence[ApplyRequest], outcomes: Sequence[ApplyResult]
    ) -> None:
        """Remember, per customer, the journal entries of the round just collected."""
        marks: dict[str, tuple[int, list[str]]] = {}
        for request, outcome in zip(requests, outcomes, strict=True):
            if outcome.profile is None:
                continue
            seq, entries = marks.get(request.customer_id, (0, []))
            entries.append(f"{OFFSET_FIELDS[request.kind]}{request.offset}")
            marks[request.customer_id] = (max(seq, outcome.seq), entries)
        self._marks = marks

    def forget(self, customers: Collection[str]) -> None:
        """Leave ``customers``' journal entries of the round collected last unsaved (their
        partition was revoked: the new owner walks those events again)."""
        self._marks = {c: m for c, m in self._marks.items() if c not in customers}

    def already_walked(
        self, requests: Sequence[ApplyRequest], outcomes: Sequence[ApplyResult]
    ) -> list[ApplyResult]:
        """``outcomes`` with each ``RECOVERED`` event that the last save already walked
        turned into a redelivery. The apply read the journal mark before that save landed
        (saves go on another connection), so the event looked unwalked; walking it again
        would count it twice in the alert state."""
        saved = self._saved
        if not saved:
            return list(outcomes)
        return [
            _REDELIVERED
            if outcome.outcome is ApplyOutcome.RECOVERED
            and outcome.seq <= saved.get(request.customer_id, 0)
            else outcome
            for request, outcome in zip(requests, outcomes, strict=True)
        ]

    def marks(self) -> dict[str, int]:
        """Per customer, the last journal number the state being saved includes (``jw``)."""
        return {c: seq for c, (seq, _) in self._marks.items()}

    def before_save(self, scored: ScoredRound) -> list[Command]:
        """Outbox entries of the round's alerts, then its due times: written before the
        states, so a save cut short leaves nothing a restart cannot redo."""
        commands: list[Command] = []
        if self.publishing:
            commands += self.outputs.write_commands(scored.snapshots, scored.examples)
            for customer_id, key, message in scored.alerts:
                field = f"{customer_id}{_SEP}{key}"
                commands.append(("HSET", self.outbox_key(message.partition), field, message.value))
        for partition, items in scored.due.items():
            commands += self._due.schedule_commands(partition, items)
        return commands

    def claim_commands(self, alerts: Sequence[tuple[str, str, OutputMessage]]) -> list[Command]:
        """Two commands per alert: claim its key, read the claim back (see :meth:`fresh`)."""
        value = _PENDING if self.publishing else _CONFIRMED
        commands: list[Command] = []
        for customer_id, key, _ in alerts:
            commands += [
                ("HSETNX", self._alerts_key(customer_id), key, value),
                ("HGET", self._alerts_key(customer_id), key),
            ]
        return commands

    def fresh(self, replies: Sequence[object]) -> list[bool]:
        """Per alert, whether to publish it: claimed now, or claimed before and still pending."""
        if not self.publishing:
            return [False] * (len(replies) // 2)
        return [replies[i] == 1 or replies[i + 1] == _PENDING for i in range(0, len(replies), 2)]

    def after_save(self, scored: ScoredRound) -> list[Command]:
        """After the states: release parked timers, drop saved journal entries, confirm the
        alerts Kafka has acknowledged since the last save."""
        commands: list[Command] = []
        for partition, items in scored.due.items():
            customers = [c for c, _ in items]
            for start in range(0, len(customers), 10_000):
                chunk = customers[start : start + 10_000]
                commands.append(("ZREM", self._due.inflight_key(partition), *chunk))
        for customer_id, (_, entries) in self._marks.items():
            commands.append(("HDEL", self._journal_key(customer_id), *entries))
        return commands + self.confirm_commands()

    def saved(self) -> None:
        """The save ran (building its commands changes nothing, so a failed one is retried
        as it was): forget its journal entries and the alerts it confirmed."""
        self._saved = self.marks()
        self._marks = {}
        self.confirmed()
        self.outputs.saved()

    def confirmed(self) -> None:
        """The commands of :meth:`confirm_commands` ran on their own (no round saved):
        forget what they confirmed, alerts and outputs."""
        self._unconfirmed.confirmed()
        self.outputs.confirmed()

    # --- profiles as the saved state saw them ----------------------------------------------
    def stale(
        self, customers: Sequence[str], raws: Sequence[Mapping[bytes | str, bytes | str]]
    ) -> dict[str, int]:
        """Customers whose profile (as read) holds applied events no saved walk included,
        with the last apply number that one did include."""
        stale = {}
        for customer_id, raw in zip(customers, raws, strict=True):
            applied = int(raw.get(b"ja") or 0)
            if not applied:
                continue
            walked = max(int(raw.get(b"jw") or 0), self._saved.get(customer_id, 0))
            if applied > walked:
                stale[customer_id] = walked
        return stale

    def journal_read(self, customer_id: str) -> Command:
        return ("HGETALL", self._journal_key(customer_id))

    def rebase(
        self, raw: Mapping[bytes | str, bytes | str], journal: object, walked: int
    ) -> dict[bytes | str, bytes | str]:
        """``raw`` with its profile fields as they were before the first applied event no
        saved walk included (from that event's journal entry), so the walk starts from there."""
        if not isinstance(journal, list):
            return dict(raw)
        first: tuple[int, bytes] | None = None
        for value in journal[1::2]:
            seq, _, rest = bytes(value).partition(b":")
            if int(seq) > walked and (first is None or int(seq) < first[0]):
                first = (int(seq), rest.partition(b":")[2])
        if first is None:
            return dict(raw)
        rebased = {k: v for k, v in raw.items() if k not in _PROFILE_CODES}
        # An entry written before a field was added has fewer values: the new field is absent.
        for code, value in zip(_CODES_IN_ORDER, first[1].split(b","), strict=False):
            if value:
                rebased[code] = value
        return rebased

    # --- alerts after Kafka ------------------------------------------------------------------
    def published(
        self, deliveries: list[asyncio.Future[Any]], alerts: Sequence[tuple[int, str, str]]
    ) -> None:
        """``alerts`` ``(partition, customer, key)`` were sent; confirm them once
        ``deliveries`` are acknowledged."""
        if alerts and self.publishing:
            self._unconfirmed.add(deliveries, list(alerts))

    def confirm_commands(self) -> list[Command]:
        """Confirm the claims of acknowledged alerts and drop them from the outbox (they
        are forgotten once :meth:`saved` says the commands ran)."""
        commands: list[Command] = []
        # An alert not acknowledged keeps its claim pending and its outbox entry.
        for alerts in self._unconfirmed.acknowledged():
            for partition, customer_id, key in alerts:
                commands += [
                    claim_confirmation(self._alerts_key(customer_id), key),
                    ("HDEL", self.outbox_key(partition), f"{customer_id}{_SEP}{key}"),
                ]
        return commands + self.outputs.confirm_commands()

    # --- a partition assigned --------------------------------------------------------------
    def restore_commands(self, partition: int) -> list[Command]:
        """Put the partition's parked timers back into its due-index (one atomic script)."""
        keys = (self._due.key(partition), self._due.inflight_key(partition))
        return [("EVAL", _RESTORE_SCRIPT, 2, *keys)]

    def outbox_read(self, partition: int) -> Command:
        return ("HGETALL", self.outbox_key(partition))

    def unpublished(
        self, partition: int, outbox: object
    ) -> tuple[list[tuple[str, str, bytes]], list[Command]]:
        """From a partition's outbox (HGETALL reply): the alerts ``(customer, key, value)``
        whose claim is not confirmed, and commands that read their claims."""
        if not isinstance(outbox, list):
            return [], []
        entries = []
        for field, value in zip(outbox[::2], outbox[1::2], strict=True):
            customer_id, _, key = bytes(field).decode().partition(_SEP)
            entries.append((customer_id, key, bytes(value)))
        reads: list[Command] = [("HGET", self._alerts_key(c), k) for c, k, _ in entries]
        return entries, reads

    def drop_confirmed(
        self, partition: int, entries: Sequence[tuple[str, str, bytes]], claims: Sequence[object]
    ) -> tuple[list[tuple[str, str, bytes]], list[Command]]:
        """Split outbox ``entries`` by their ``claims``: those to publish again, and commands
        that drop the confirmed ones."""
        again: list[tuple[str, str, bytes]] = []
        drop: list[Command] = []
        for (customer_id, key, value), claim in zip(entries, claims, strict=True):
            if claim == _CONFIRMED:
                drop.append(("HDEL", self.outbox_key(partition), f"{customer_id}{_SEP}{key}"))
            else:
                again.append((customer_id, key, value))
        return again, drop
