"""What every rule of the timeline is given and answers (:class:`AlertRule`).

A rule sees each event (:meth:`AlertRule.at_event`) and each checkpoint
(:meth:`AlertRule.at_checkpoint`) of a customer's walk (:mod:`scorers.timeline`), returns the
alerts it raises there, and writes only its own fields of :class:`CustomerState` (its
``owns``) into ``changes``, which the timeline applies in one ``_replace``. A rule with timers
of its own says when the next one falls (:meth:`AlertRule.next_due`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from scorers.alerts import AlertDraft, AlertPolicy, EscalationPolicy
from scorers.anomaly import AnomalyScorer
from scorers.customer_state import CustomerState
from scorers.probability import ProbabilityModel
from scorers.profile import Profile
from scorers.quintiles import RfmBoundaries

__all__ = [
    "DAY",
    "AlertRule",
    "CheckpointStep",
    "EventStep",
    "RuleDefaults",
    "Timeline",
    "Trigger",
    "silence_reason",
    "usual_gap_days",
]

DAY = 86_400
Trigger = Literal["event", "timer"]


class Timeline(Protocol):
    """What a rule reads of the timeline it runs in (:class:`scorers.timeline.Timeline`): its
    configuration, which the worker swaps while it runs."""

    @property
    def policy(self) -> AlertPolicy: ...
    @property
    def model(self) -> ProbabilityModel | None: ...
    @property
    def boundaries(self) -> RfmBoundaries | None: ...
    @property
    def anomaly(self) -> AnomalyScorer | None: ...
    @property
    def escalation(self) -> EscalationPolicy | None: ...
    def value_cut(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class EventStep:
    """One event of a customer's walk. ``state`` is from before the event; ``changes`` are
    what the event and the rules before this one changed so far (read, not written, except a
    rule's own fields)."""

    timeline: Timeline
    customer_id: str
    state: CustomerState
    changes: dict[str, Any]
    profile: Profile  # after the event
    at: int
    purchase: bool
    previous_purchase: int | None  # the last purchase before this event
    late: bool
    signals: tuple[tuple[str, float], ...]
    order: tuple[str, str, int] | None  # (event id, type, amount in base minor units)


@dataclass(frozen=True, slots=True)
class CheckpointStep:
    """One checkpoint of a customer's walk: ``state`` is from before it, ``segment`` the RFM
    segment there (None without boundaries)."""

    timeline: Timeline
    customer_id: str
    state: CustomerState
    profile: Profile
    at: int
    trigger: Trigger
    segment: str | None


class AlertRule(Protocol):
    """One alert rule of the timeline (see the module doc)."""

    #: The :class:`CustomerState` fields the rule writes.
    owns: tuple[str, ...]

    def at_event(self, step: EventStep, changes: dict[str, Any]) -> list[AlertDraft]:
        """Alerts at an event (dropped for a late one, which still updates the state)."""
        ...

    def at_checkpoint(self, step: CheckpointStep, changes: dict[str, Any]) -> list[AlertDraft]:
        """Alerts at a checkpoint."""
        ...

    def next_due(
        self, timeline: Timeline, state: CustomerState, profile: Profile, after: int
    ) -> int | None:
        """The rule's next timer (epoch second) after ``after`` if nothing else happens (a
        time not after it is ignored), or None."""
        ...


class RuleDefaults:
    """The hooks a rule has nothing to do in: no state, no alerts, no timers. A rule derives
    from it and writes only the hooks it uses."""

    owns: tuple[str, ...] = ()

    def at_event(self, step: EventStep, changes: dict[str, Any]) -> list[AlertDraft]:
        return []

    def at_checkpoint(self, step: CheckpointStep, changes: dict[str, Any]) -> list[AlertDraft]:
        return []

    def next_due(
        self, timeline: Timeline, state: CustomerState, profile: Profile, after: int
    ) -> int | None:
        return None


def usual_gap_days(first: int | None, last: int | None, orders: int) -> float | None:
    """The mean days between purchases, from the first and last purchase and their count."""
    if first is None or last is None or orders < 2 or last <= first:
        return None
    return (last - first) / (orders - 1) / DAY


def silence_reason(profile: Profile, at: int) -> str:
    """How long the customer has not bought, and how often they usually do."""
    last = profile.last_purchase_at or at
    text = f"no purchase for {(at - last) / DAY:.0f} days"
    usual = usual_gap_days(profile.first_purchase_at, last, profile.orders)
    return text if usual is None else f"{text}; usually buys every {usual:.0f} days"
