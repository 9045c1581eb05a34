"""Removing customers whose data expired (``CRM_RETENTION_DAYS``, :mod:`scorers.retention`).

The round decides who expired (:class:`~streams.round.scorer.ScoredRound` ``expired`` and
``reset``); :class:`RetentionCleaner` gives the commands a round's save runs for them:

- **expired** (silent past the retention at the round's end): every key of the customer
  (:meth:`~streams.state.keys.Layout.customer_keys`) and its entries in the segment, value-group
  and cluster sets and the agents' sets, as an erasure removes them, but no suppression
  record: the id's later events start a new customer. One script per customer, on the
  customer's slot, deletes the keys only if no newer event was applied meanwhile (the next
  round is applied before this one is saved); it answers with the index entries to remove.
  Its due-index entry goes with the round's due times. Run after the round's writes;
- **reset** (an event found the old data expired, and started afresh): the old keys but the
  profile record and the journal, which the apply script already reset, and the old index
  entries. Run before the round's writes, which then index the new customer.

One audit entry per round that removed someone says how many, not who.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from scorers.segments import load_segments
from streams.state.erasure import index_removals
from streams.state.keys import Layout
from streams.state.query_index import CustomerIndex
from streams.state.resp import Command

__all__ = ["RetentionCleaner"]

# KEYS: the customer's keys (Layout.customer_keys: the profile record first, the shares
# last). ARGV[1] 'expire' and the newest event time the round removed it with: delete every key
# unless the record holds a newer event; 'reset': delete all but the record and the journal
# (KEYS[1] and KEYS[3]). Returns {deleted keys (-1: declined), the record's 'ix' or '', the
# agents it was shared with...}.
_SCRIPT = """
local ix, newest = '', -1
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'string' then
  local record = cmsgpack.unpack(string.sub(redis.call('GET', KEYS[1]), 2))
  ix = record['ix'] or ''
  for _, f in ipairs({'xp', 'xs', 'xm'}) do newest = math.max(newest, tonumber(record[f]) or -1) end
elseif kind == 'hash' then
  local v = redis.call('HMGET', KEYS[1], 'ix', 'xp', 'xs', 'xm')
  ix = v[1] or ''
  for i = 2, 4 do newest = math.max(newest, tonumber(v[i]) or -1) end
end
if ARGV[1] == 'expire' and newest > tonumber(ARGV[2]) then return {-1, ix} end
local out = {0, ix}
for _, agent in ipairs(redis.call('SMEMBERS', KEYS[#KEYS])) do out[#out + 1] = agent end
for i = 1, #KEYS do
  if ARGV[1] == 'expire' or (i ~= 1 and i ~= 3) then
    out[1] = out[1] + redis.call('DEL', KEYS[i])
  end
end
return out
"""


class RetentionCleaner:
    """The Redis commands of the retention removals (see the module doc)."""

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._segments = load_segments().names

    def script_commands(
        self, reset: Iterable[str], expired: Mapping[str, tuple[int, int]]
    ) -> list[Command]:
        """One script call per customer: ``reset`` ones, or ``expired`` ones (customer ->
        partition, newest event time)."""
        commands: list[Command] = []
        for customer_id in reset:
            commands.append(self._call(customer_id, "reset", 0))
        for customer_id, (_, newest) in expired.items():
            commands.append(self._call(customer_id, "expire", newest))
        return commands

    def _call(self, customer_id: str, mode: str, newest: int) -> Command:
        keys = self._layout.customer_keys(customer_id)
        return ("EVAL", _SCRIPT, len(keys), *keys, mode, newest)

    def index_commands(
        self, customers: Sequence[str], replies: Sequence[object]
    ) -> tuple[list[Command], int]:
        """The index removals of the customers whose script call deleted (``replies``, in the
        order of :meth:`script_commands`), and how many of them were removed."""
        commands: list[Command] = []
        removed = 0
        for customer_id, reply in zip(customers, replies, strict=True):
            if not isinstance(reply, list) or int(reply[0]) < 0:
                continue  # an error (the save reports it) or a newer event was applied
            removed += 1
            raw = reply[1]
            index = CustomerIndex.from_bytes(bytes(raw) if raw else None)
            shared = [bytes(a).decode() for a in reply[2:]]
            commands += index_removals(self._layout, self._segments, customer_id, index, shared)
        return commands, removed

    def audit_command(self, expired: int, started_afresh: int) -> Command:
        """The round's audit entry: how many customers' data expired, never who."""
        return (
            "XADD", self._layout.audit, "*", "at", datetime.now(UTC).isoformat(),
            "key", "worker", "role", "retention", "method", "RETAIN",
            "path", f"retention: removed={expired} started_afresh={started_afresh}",
            "customer", "", "decision", "allowed", "status", "200",
        )  # fmt: skip
