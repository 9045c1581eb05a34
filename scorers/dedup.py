"""Which events count: one deduplication rule for the worker and the offline tools.

An event counts once *per customer*: a repeated event id of the same customer is a duplicate,
whatever its kind (two customers may use the same id). Ids are remembered per kind until the
newest event of that kind is more than ``window`` seconds past them; an event older than that
cannot be proven new and is refused (the worker dead-letters it as ``beyond_dedup_window``).
Events are judged in the order given: the worker's is its release order (event time, kind,
event id; :func:`release_order`), late events when they arrive.

The worker runs this rule inside Redis, next to the profile it guards
(``streams/state/scripts/apply_event.lua``, on :func:`event_id_hash` of the id); :class:`Dedup`
is the same rule for event files (``crm-score fit --events``, ``crm-score evaluate``).
``tests/integration/state/test_profiles.py`` checks that both give the same verdicts.

Ids are compared by an 8-byte hash (13 bytes kept per id with its kind and time). Two ids of one
customer with the same hash inside the window would count the second as a duplicate: with ``n``
ids remembered, a chance of ``n / 2**64`` per event (~1e-18 for a customer's 20).

Examples
--------
>>> dedup = Dedup(window_seconds=100)
>>> [dedup.admit(c, "purchase", i, t).value for c, i, t in
...  [("c1", "e1", 1000), ("c2", "e1", 1000), ("c1", "e1", 1005), ("c1", "e2", 1200),
...   ("c1", "e3", 1050)]]
['new', 'new', 'duplicate', 'new', 'beyond_window']
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

from schemas import Event
from scorers.deltas import epoch_seconds

__all__ = ["Dedup", "Verdict", "event_id_hash", "release_order"]


class Verdict(Enum):
    """What the rule says about one event."""

    NEW = "new"
    DUPLICATE = "duplicate"  # the customer's event with this id counted already
    BEYOND_WINDOW = "beyond_window"  # too old to tell: not counted


class _Seen(NamedTuple):
    digest: bytes
    kind: str
    event_time: int


def event_id_hash(event_id: str) -> bytes:
    """8-byte digest of an event id, as the dedup record stores it."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


def release_order(event: Event) -> tuple[float, str, str]:
    """The order the worker releases (and so judges) events in: exact time, kind, id."""
    return (event.event_time.timestamp(), event.kind, event.event_id)


class Dedup:
    """The rule of the module doc, over events in the order they are given."""

    def __init__(self, window_seconds: float) -> None:
        self._window = int(window_seconds)  # whole seconds, as the worker passes it
        self._seen: dict[str, list[_Seen]] = {}

    def admit(self, customer_id: str, kind: str, event_id: str, event_time: int) -> Verdict:
        """Judge one event (``event_time`` in whole epoch seconds) and remember it if new."""
        seen = self._seen.setdefault(customer_id, [])
        digest = event_id_hash(event_id)
        if any(record.digest == digest for record in seen):
            return Verdict.DUPLICATE
        newest = {kind: event_time}
        for record in seen:
            if record.kind not in newest or record.event_time > newest[record.kind]:
                newest[record.kind] = record.event_time
        if event_time < newest[kind] - self._window:
            return Verdict.BEYOND_WINDOW
        kept = [r for r in seen if r.event_time >= newest[r.kind] - self._window]
        kept.append(_Seen(digest, kind, event_time))
        self._seen[customer_id] = kept
        return Verdict.NEW

    def admit_event(self, event: Event) -> Verdict:
        """:meth:`admit` a parsed event."""
        return self.admit(
            event.customer_id, event.kind, event.event_id, epoch_seconds(event.event_time)
        )

    def verdicts(self, events: Iterable[tuple[str, str, str, int]]) -> list[Verdict]:
        """:meth:`admit` each ``(customer_id, kind, event_id, event_time)`` in turn."""
        return [self.admit(*event) for event in events]
