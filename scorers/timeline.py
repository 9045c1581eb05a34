"""One customer's timeline: what happens at each event and at each moment of silence.

Between two events a customer's scores still move: recency grows, so R drops when it passes a
quintile boundary, and P(alive) decays, crossing the alert threshold at a time that can be
solved for. Those moments are *checkpoints* (docs/ARCHITECTURE.md, decision 4).
:class:`Timeline` walks a customer's history in event-time order: :meth:`Timeline.silence`
yields the checkpoints of a quiet stretch, :meth:`Timeline.event` handles one event, and both
apply the alert rules to a small :class:`CustomerState` that the caller persists with the
profile. Everything is a function
of (profile, state, time), so walking the same history in any number of pieces, with restarts
between them, gives the same checkpoints and the same alerts; the streaming caller only has to
feed events in event-time order (the reorder buffer does) and stop silences at its watermark.

The alert rules (:mod:`scorers.alert_rules`, one module each behind one protocol, each owning its
slice of :class:`CustomerState`) run at every event and checkpoint; each alert's idempotency key
is rule + customer + episode.

Times are whole epoch seconds (UTC). Probability scores (P(alive), CLV) for checkpoints are
filled in by the caller in one vectorised call; the rules only need what is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scorers.alert_rules import AlertRule, CheckpointStep, EventStep, default_rules
from scorers.alert_rules.base import Trigger
from scorers.alerts import AlertDraft, AlertPolicy, EscalationPolicy
from scorers.churn_labels import LabelPolicy
from scorers.customer_state import CustomerState
from scorers.probability import ProbabilityModel
from scorers.profile import Profile
from scorers.quintiles import RfmBoundaries
from scorers.rfm import Rfm, rfm
from scorers.segments import SegmentMap

if TYPE_CHECKING:
    from scorers.anomaly import AnomalyScorer

__all__ = ["Checkpoint", "CustomerState", "Timeline"]


@dataclass(slots=True)
class Checkpoint:
    """One moment a customer's scores are (re)computed: a score snapshot, maybe alerts."""

    at: int
    trigger: Trigger
    profile: Profile
    rfm: Rfm
    quintiles: tuple[int, int, int] | None
    segment: str | None
    alerts: list[AlertDraft] = field(default_factory=list)
    event_index: int | None = None  # the caller's index of the triggering event
    state: CustomerState | None = None  # the state right after this checkpoint
    snapshot: bool = False  # a churn snapshot was taken here
    resolved: list[tuple[int, int]] = field(default_factory=list)  # (snapshot time, label)
    late: bool = False  # the checkpoint of a late event (never alerts)


class Timeline:
    """Checkpoints and alert rules for one scoring configuration (model, boundaries, policy).

    ``high_value_clv`` overrides the model's top-tier CLV cut (the value groups use the same);
    ``rules`` replaces :func:`scorers.alert_rules.default_rules`.
    """

    def __init__(
        self,
        policy: AlertPolicy,
        segments: SegmentMap,
        boundaries: RfmBoundaries | None,
        model: ProbabilityModel | None,
        labels: LabelPolicy | None = None,
        escalation: EscalationPolicy | None = None,
        anomaly: AnomalyScorer | None = None,
        high_value_clv: float | None = None,
        rules: tuple[AlertRule, ...] | None = None,
    ) -> None:
        self.policy = policy
        self.rules = default_rules() if rules is None else rules
        self.high_value_clv = high_value_clv
        self.labels = labels
        self.escalation = escalation
        self.anomaly = anomaly
        self.segments = segments
        self.boundaries = boundaries
        self.model = model
        grid = range(1, 6)
        self._segment_of = {
            (r, f, m): segments.segment_for(r, f, m) for r in grid for f in grid for m in grid
        }

    # --- the walk ------------------------------------------------------------------------------
    def silence(
        self, customer_id: str, state: CustomerState, profile: Profile, until: int, *, upto: bool
    ) -> tuple[CustomerState, list[Checkpoint]]:
        """Checkpoints after ``state.evaluated_at`` and before ``until`` (or at it, ``upto``).

        ``profile`` must hold for the whole stretch (no event of this customer inside it).
        """
        points: list[Checkpoint] = []
        if state.evaluated_at is None:
            return state, points
        at = self.next_due(state, profile, state.evaluated_at)
        while at is not None and (at < until or (upto and at == until)):
            state, point = self._checkpoint(customer_id, state, profile, at, "timer")
            points.append(point)
            at = self.next_due(state, profile, at)
        return state, points

    def event(
        self,
        customer_id: str,
        state: CustomerState,
        profile: Profile,
        at: int,
        *,
        purchase: bool,
        clv: float | None,
        late: bool = False,
        event_index: int | None = None,
        signals: Sequence[tuple[str, float]] = (),
        order: tuple[str, str, int] | None = None,
    ) -> tuple[CustomerState, Checkpoint]:
        """The checkpoint of one event; ``profile`` is the profile after it.

        ``clv`` is the CLV scored at this event (it sets the value tier at a purchase);
        ``signals`` are its recent-activity signals (:func:`scorers.churn_features.signal_of`);
        ``order`` is (event id, type, amount in base minor units) of a purchase event, for the
        anomaly scorer.
        A ``late`` event (older than the watermark when it arrived) only updates the remembered
        last purchase, recent activity and the labels of snapshots before it: it raises no
        alert and moves no checkpoint, as alerts are never fired for the past.
        """
        previous_purchase = state.last_purchase_at
        # Changes are gathered and applied in one _replace: each costs microseconds.
        changes: dict[str, Any] = {}
        if signals:
            recent = state.recent
            for signal, amount in signals:
                recent = recent.add(signal, at, amount)
            changes["recent"] = recent
        if purchase:
            changes.update(self._after_purchase(state, at, clv))
            if not late and previous_purchase is not None and at > previous_purchase:
                changes["last_gap"] = at - previous_purchase
        step = EventStep(
            self, customer_id, state, changes, profile, at, purchase, previous_purchase, late,
            tuple(signals), order,
        )  # fmt: skip
        alerts: list[AlertDraft] = []
        for rule in self.rules:
            alerts += rule.at_event(step, changes)
        if late:  # alerts are never fired for the past
            scores, quintiles, segment = self._segment(profile, at)
            point = Checkpoint(at, "event", profile, scores, quintiles, segment, [], event_index)
            point.late = True
            changes.update(self._label(state, profile, point, purchase=purchase, late=True))
            state = state._replace(**changes)
            point.state = state
            return state, point
        if changes:
            state = state._replace(**changes)
        state, point = self._checkpoint(customer_id, state, profile, at, "event", purchase)
        point.alerts[:0] = alerts
        point.event_index = event_index
        return state, point

    def checkpoint(
        self, customer_id: str, state: CustomerState, profile: Profile, at: int
    ) -> tuple[CustomerState, Checkpoint]:
        """A timer checkpoint at ``at`` whether or not one is due (scoring every customer at one
        moment, as ``crm-score score`` does); ``profile`` must hold at ``at``."""
        return self._checkpoint(customer_id, state, profile, at, "timer")

    def next_due(self, state: CustomerState, profile: Profile, after: int) -> int | None:
        """The first checkpoint strictly after ``after`` if nothing else happens, or None."""
        candidates: list[int] = []
        for rule in self.rules:
            rule_due = rule.next_due(self, state, profile, after)
            if rule_due is not None:
                candidates.append(rule_due)
        if self.labels is not None:
            label_due = self.labels.next_due(
                state.pending, state.last_snapshot_at, profile.last_purchase_at, profile.orders
            )
            if label_due is not None:
                candidates.append(label_due)
        due = [t for t in candidates if t > after]
        return min(due) if due else None

    # --- internals -----------------------------------------------------------------------------
    def _checkpoint(
        self,
        customer_id: str,
        state: CustomerState,
        profile: Profile,
        at: int,
        trigger: Trigger,
        purchase: bool = False,
    ) -> tuple[CustomerState, Checkpoint]:
        scores, quintiles, segment = self._segment(profile, at)
        # One _replace per checkpoint: on an 11-field NamedTuple each costs microseconds.
        changes: dict[str, Any] = {"evaluated_at": at}
        step = CheckpointStep(self, customer_id, state, profile, at, trigger, segment)
        alerts: list[AlertDraft] = []
        for rule in self.rules:
            alerts += rule.at_checkpoint(step, changes)
        point = Checkpoint(at, trigger, profile, scores, quintiles, segment, alerts)
        changes.update(self._label(state, profile, point, purchase=purchase, late=False))
        state = state._replace(**changes)
        point.state = state
        return state, point

    def _label(
        self,
        state: CustomerState,
        profile: Profile,
        point: Checkpoint,
        *,
        purchase: bool,
        late: bool,
    ) -> dict[str, Any]:
        """Take or resolve churn snapshots at ``point`` (recorded on it); the state's changes."""
        if self.labels is None:
            return {}
        step = self.labels.step(
            state.pending,
            state.last_snapshot_at,
            profile.last_purchase_at,
            at=point.at,
            purchase=purchase,
            late=late,
            orders=profile.orders,
        )
        point.snapshot, point.resolved = step.snapshot, step.resolved
        return {"pending": step.pending, "last_snapshot_at": step.last_snapshot_at}

    def _segment(
        self, profile: Profile, at: int
    ) -> tuple[Rfm, tuple[int, int, int] | None, str | None]:
        scores = rfm(profile, datetime.fromtimestamp(at, UTC))
        if self.boundaries is None:
            return scores, None, None
        quintiles = self.boundaries.score_rfm(scores)
        if quintiles is None:
            return scores, None, None
        return scores, quintiles, self._segment_of[quintiles]

    def _after_purchase(self, state: CustomerState, at: int, clv: float | None) -> dict[str, Any]:
        """The state's changes at a purchase."""
        last = at if state.last_purchase_at is None else max(state.last_purchase_at, at)
        if last != at:  # an older purchase (late): the value tier stays with the newest one
            return {"last_purchase_at": last}
        cut = self.value_cut()
        high = clv is not None and cut is not None and clv >= cut
        return {"last_purchase_at": last, "high_value": high, "value_minor": clv}

    def value_cut(self) -> float | None:
        """The top-tier CLV cut: ``high_value_clv``, else the model's (None without one)."""
        if self.high_value_clv is not None:
            return self.high_value_clv
        return None if self.model is None else self.model.high_value_clv
