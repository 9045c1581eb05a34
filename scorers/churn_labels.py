"""Delayed churn labels: snapshots of a customer, labelled once the horizon tells.

A *snapshot* is taken at every purchase, and while a customer is silent at most once every
``sample_days`` (until the silence is ``max_silence_days`` long), so the model also learns what
long silences lead to. Its label is 1 when no purchase follows within ``horizon_days`` (the
window ``(snapshot, snapshot + horizon]``), known at the first second after the window (a
due time, so the timer resolves it: no polling), and 0 when a purchase arrives inside it.

Only the snapshot *times* are decided here, during the walk; the streaming caller attaches the
features (they need the round's vectorised P(alive)) and publishes each resolved example.

Examples
--------
>>> policy = LabelPolicy(horizon_days=1, sample_days=1, max_silence_days=2)
>>> step = policy.step((), None, 0, at=0, purchase=True, late=False, orders=1)
>>> step.pending, step.snapshot
(((0, None),), True)
>>> policy.next_due(step.pending, step.last_snapshot_at, 0, 1)
86400
>>> policy.step(step.pending, 0, 0, at=86_401, purchase=False, late=False, orders=1).resolved
[(0, 1)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["LabelPolicy", "LabelStep", "Pending"]

_DAY = 86_400

#: Snapshots waiting for their label: (snapshot time, features or None until attached).
Pending = tuple[tuple[int, tuple[float | None, ...] | None], ...]


class LabelStep(NamedTuple):
    """What one checkpoint did to a customer's snapshots."""

    pending: Pending
    last_snapshot_at: int | None
    snapshot: bool  # a snapshot was taken at this checkpoint
    resolved: list[tuple[int, int]]  # (snapshot time, label), oldest first


@dataclass(frozen=True, slots=True)
class LabelPolicy:
    """When snapshots are taken and how long their labels take (from settings)."""

    horizon_days: float = 90.0
    sample_days: float = 30.0
    max_silence_days: float = 180.0
    #: The three in whole seconds (rounded up), as the walk uses them.
    horizon_seconds: int = field(init=False, repr=False)
    _sample_seconds: int = field(init=False, repr=False)
    _max_silence_seconds: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("horizon_days", "sample_days", "max_silence_days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        object.__setattr__(self, "horizon_seconds", math.ceil(self.horizon_days * _DAY))
        object.__setattr__(self, "_sample_seconds", math.ceil(self.sample_days * _DAY))
        object.__setattr__(self, "_max_silence_seconds", math.ceil(self.max_silence_days * _DAY))

    def step(
        self,
        pending: Pending,
        last_snapshot_at: int | None,
        last_purchase_at: int | None,
        *,
        at: int,
        purchase: bool,
        late: bool,
        orders: int,
    ) -> LabelStep:
        """The checkpoint at ``at`` (after applying its event, if any).

        A ``late`` purchase (older than the watermark) still labels the snapshots before it 0,
        but takes no snapshot and expires nothing: both happen only in event-time order.
        """
        take = False
        if not late and orders > 0:
            if purchase:
                take = True
            elif last_snapshot_at is not None and last_purchase_at is not None:
                take = at - last_snapshot_at >= self._sample_seconds and (
                    at - last_purchase_at <= self._max_silence_seconds
                )
        horizon = self.horizon_seconds
        if not take and not (pending and (purchase or at > pending[0][0] + horizon)):
            return LabelStep(pending, last_snapshot_at, False, [])  # nothing to do: most calls
        resolved: list[tuple[int, int]] = []
        kept: list[tuple[int, tuple[float | None, ...] | None]] = []
        for entry in pending:
            snapshot_at = entry[0]
            if not late and at > snapshot_at + horizon:
                resolved.append((snapshot_at, 1))
            elif purchase and snapshot_at < at <= snapshot_at + horizon:
                resolved.append((snapshot_at, 0))
            else:
                kept.append(entry)
        if take:
            kept = [e for e in kept if e[0] != at]  # one snapshot per second: the latest
            kept.append((at, None))
            last_snapshot_at = at
        return LabelStep(tuple(kept), last_snapshot_at, take, resolved)

    def next_due(
        self,
        pending: Pending,
        last_snapshot_at: int | None,
        last_purchase_at: int | None,
        orders: int,
    ) -> int | None:
        """The next second a label resolves or a silence sample is due, if nothing happens."""
        due = [entry[0] + self.horizon_seconds + 1 for entry in pending]
        if orders > 0 and last_snapshot_at is not None and last_purchase_at is not None:
            sample_at = last_snapshot_at + self._sample_seconds
            if sample_at - last_purchase_at <= self._max_silence_seconds:
                due.append(sample_at)
        return min(due) if due else None
