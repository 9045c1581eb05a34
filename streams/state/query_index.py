"""What a round writes for the query API: latest snapshots, segment indexes, who owns whom.

The round save (:meth:`streams.state.round_store.RoundStore.save`) asks :class:`RoundIndexer`
for the commands and sends them in its one packed write. Per customer the round walked that is one
``SET`` of the latest snapshot and a ``ZADD`` per sort order of its segment; the rest (moving
between segments, value groups or clusters, a new owner, newer contact details) happens only on
change: a move between value groups (or clusters) is one ``ZREM`` and one ``ZADD``.

Departments, owner and contact come from the events' envelopes; a field an event does not
state keeps its value. Departments are kept per event kind (a customer belongs to a sales, a
service and a marketing department at once). Released events come in event-time order, so each
one is the newest so far; a late event is not, and changes nothing once a newer event of its kind
(for the department) or of any kind (for owner and contact) was applied, which the profile after
it tells (its ``last_*_event_at``), so no times need to be stored.

Examples
--------
>>> index = CustomerIndex().learn("purchase", "sales/emea", "agent-1")
>>> index.departments, index.owner
({'purchase': 'sales/emea'}, 'agent-1')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

import orjson

from streams.round.messages import Applied, OutputMessage
from streams.state.keys import SORTS, Layout
from streams.state.pii import PLAIN, PiiCipher
from streams.state.resp import Command
from streams.state.snapshots import pack as pack_snapshot

__all__ = ["CustomerIndex", "RoundIndexer", "sort_score"]

_Member = TypeVar("_Member", str, int)
_NO_DEPARTMENTS: Mapping[str, str] = MappingProxyType({})
_LAST_OF_KIND = {
    "purchase": lambda p: p.last_purchase_event_at,
    "service": lambda p: p.last_service_event_at,
    "marketing": lambda p: p.last_marketing_event_at,
}


class CustomerIndex(NamedTuple):
    """What the API's indexes hold for one customer (the ``ix`` field of its profile).

    A NamedTuple: one is made or changed for every event of a round.
    """

    segment: str | None = None
    #: event kind -> department (treat as read-only)
    departments: Mapping[str, str] = _NO_DEPARTMENTS
    owner: str | None = None
    #: digest of the stored contact details (to write them only when they change; keyed when
    #: they are encrypted, see streams.state.pii)
    contact: str | None = None
    #: value x risk group and exploratory cluster of the latest snapshot
    value_group: str | None = None
    cluster: int | None = None

    def learn(self, kind: str, department: str | None, owner: str | None) -> CustomerIndex:
        """This index after a (newest) event of ``kind`` stating ``department`` and ``owner``
        (``None``: not stated, keep what is known)."""
        index = self
        if department is not None and self.departments.get(kind) != department:
            index = index._replace(departments={**index.departments, kind: department})
        if owner is not None and owner != self.owner:
            index = index._replace(owner=owner)
        return index

    def to_bytes(self) -> bytes:
        """Compact JSON, as stored."""
        data: dict[str, Any] = {"s": self.segment, "d": dict(self.departments)}
        if self.owner is not None:
            data["o"] = self.owner
        if self.contact is not None:
            data["c"] = self.contact
        if self.value_group is not None:
            data["g"] = self.value_group
        if self.cluster is not None:
            data["k"] = self.cluster
        return orjson.dumps(data)

    @classmethod
    def from_bytes(cls, raw: bytes | str | None) -> CustomerIndex:
        """Read :meth:`to_bytes` (an absent field: an empty index)."""
        if not raw:
            return cls()
        data = orjson.loads(raw)
        return cls(
            data.get("s"),
            dict(data.get("d", {})),
            data.get("o"),
            data.get("c"),
            data.get("g"),
            data.get("k"),
        )


def sort_score(value: float | None) -> str:
    """A snapshot value as a sorted-set score argument; unknown values sort last (``-inf``).

    >>> sort_score(None), sort_score(0.25)
    ('-inf', '0.25')
    """
    return "-inf" if value is None or math.isnan(value) else repr(float(value))


def _moves(
    key_of: Callable[[_Member], str],
    old: _Member | None,
    new: _Member | None,
    member: bytes,
    joined: str,
) -> list[Command]:
    """Leave ``old``'s set and join ``new``'s (scored by when), if they differ."""
    if old == new:
        return []
    commands: list[Command] = []
    if old is not None:
        commands.append(("ZREM", key_of(old), member))
    if new is not None:
        commands.append(("ZADD", key_of(new), joined, member))
    return commands


def _epoch(as_of: object) -> str:
    """A snapshot's ``as_of`` as epoch seconds (``0`` if it has none)."""
    if not isinstance(as_of, str):
        return "0"
    return repr(datetime.fromisoformat(as_of).timestamp())


class RoundIndexer:
    """Builds the API's share of a round's save; contact details are sealed by ``pii``
    (encrypted, or plain without keys) when they changed."""

    def __init__(self, layout: Layout, pii: PiiCipher = PLAIN) -> None:
        self.layout = layout
        self.pii = pii

    def commands(
        self,
        before: Mapping[str, CustomerIndex],
        applied: Sequence[Applied],
        snapshots: Sequence[OutputMessage],
    ) -> tuple[dict[str, CustomerIndex], list[Command]]:
        """The new index of every customer whose index changed, and the commands to write.

        ``before`` holds the indexes as stored before the round (missing: empty);
        ``applied`` the round's events; ``snapshots`` its score snapshots in order.
        """
        layout = self.layout
        commands: list[Command] = []
        after: dict[str, CustomerIndex] = {}
        for a in applied:
            event = a.event
            customer = event.customer_id
            index = after.get(customer) or before.get(customer) or CustomerIndex()
            at = int(a.event_time)
            # A late event says nothing a newer event of its kind (department) or of any
            # kind (owner, contact) said or would have said.
            newest = a.profile.last_event_at
            current = not a.late or newest is None or newest <= at
            of_kind = _LAST_OF_KIND[event.kind](a.profile)
            department = (
                event.department if not a.late or of_kind is None or of_kind <= at else None
            )
            index = index.learn(event.kind, department, event.owner if current else None)
            if current and event.contact is not None:
                contact = event.contact.model_dump_json(exclude_none=True).encode()
                digest = self.pii.digest(contact)
                if digest != index.contact:  # encrypted only when it changed
                    index = index._replace(contact=digest)
                    sealed = self.pii.seal(customer, contact)
                    commands.append(("SET", layout.contact(customer), sealed))
            after[customer] = index

        last: dict[bytes, bytes] = {}
        for message in snapshots:
            if message.key is not None:
                last[message.key] = message.value
        for key, value in last.items():
            customer = key.decode()
            snapshot = orjson.loads(value)
            commands.append(("SET", layout.snapshot(customer), pack_snapshot(snapshot, value)))
            segment = snapshot.get("segment")
            old = before.get(customer) or CustomerIndex()
            index = after.get(customer) or old
            if segment is not None:
                commands.append(
                    ("ZADD", layout.segment(segment, "clv"), sort_score(snapshot.get("clv")), key)
                )
                churn = sort_score(snapshot.get("churn_probability"))
                commands.append(("ZADD", layout.segment(segment, "churn"), churn, key))
            if old.segment is not None and old.segment != segment:
                commands += [("ZREM", layout.segment(old.segment, s), key) for s in SORTS]
            group, cluster = snapshot.get("value_group"), snapshot.get("cluster")
            if group != old.value_group or cluster != old.cluster:
                joined = _epoch(snapshot.get("as_of"))
                commands += _moves(layout.value_group, old.value_group, group, key, joined)
                commands += _moves(layout.cluster, old.cluster, cluster, key, joined)
            if (segment, group, cluster) != (index.segment, index.value_group, index.cluster):
                after[customer] = index._replace(
                    segment=segment, value_group=group, cluster=cluster
                )

        for customer, index in after.items():
            old = before.get(customer) or CustomerIndex()
            if index.owner != old.owner:
                if old.owner is not None:
                    commands.append(("SREM", layout.agent(old.owner, "owned"), customer))
                if index.owner is not None:
                    commands.append(("SADD", layout.agent(index.owner, "owned"), customer))
        changed = {c: i for c, i in after.items() if i != (before.get(c) or CustomerIndex())}
        return changed, commands
