"""``high_value_at_risk``: at the checkpoint where P(alive) falls under the threshold, for a
customer whose CLV at their last purchase was in the top tier (episode: that last purchase, so
one alert per silence). Its timer is that crossing."""

from __future__ import annotations

import math
from typing import Any

from schemas.outputs import AlertType, Severity
from scorers.alert_rules.base import (
    CheckpointStep,
    RuleDefaults,
    Timeline,
    silence_reason,
)
from scorers.alerts import AlertDraft
from scorers.customer_state import CustomerState
from scorers.profile import Profile

__all__ = ["HighValueAtRisk"]


class HighValueAtRisk(RuleDefaults):
    """Owns the silence (last purchase) it alerted for; reads the value tier the timeline
    keeps at each purchase."""

    owns: tuple[str, ...] = ("at_risk_episode",)

    def at_checkpoint(self, step: CheckpointStep, changes: dict[str, Any]) -> list[AlertDraft]:
        if step.trigger != "timer":
            return []
        state, profile, at = step.state, step.profile, step.at
        crossing = _crossing(step.timeline, state, profile)
        if crossing is None or at <= crossing:
            return []
        changes["at_risk_episode"] = profile.last_purchase_at
        timeline = step.timeline
        cut = timeline.value_cut()
        reasons = [
            silence_reason(profile, at),
            f"P(alive) fell below {timeline.policy.p_alive_threshold:.0%}",
        ]
        if state.value_minor is not None and cut is not None:
            reasons.append(
                f"CLV at last purchase {state.value_minor / 100:,.2f} is in the top tier "
                f"(>= {cut / 100:,.2f})"
            )
        return [
            AlertDraft(
                AlertType.HIGH_VALUE_AT_RISK,
                Severity.CRITICAL,
                f"high_value_at_risk:{step.customer_id}:{profile.last_purchase_at}",
                reasons,
                {
                    "last_purchase_at": profile.last_purchase_at,
                    "clv_at_last_purchase": state.value_minor,
                },
            )
        ]

    def next_due(
        self, timeline: Timeline, state: CustomerState, profile: Profile, after: int
    ) -> int | None:
        crossing = _crossing(timeline, state, profile)
        return None if crossing is None else math.floor(crossing) + 1


def _crossing(timeline: Timeline, state: CustomerState, profile: Profile) -> float | None:
    """Epoch second P(alive) falls under the threshold, for a high-value customer not yet
    alerted in this silence; None otherwise (or when it was under it from the start)."""
    last = profile.last_purchase_at
    model = timeline.model
    if model is None or not state.high_value or last is None:
        return None
    if state.at_risk_episode == last:
        return None
    crossing = model.p_alive_crossing_epoch(profile, timeline.policy.p_alive_threshold)
    if crossing is None or crossing <= last:
        return None
    return crossing
