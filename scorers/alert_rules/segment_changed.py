"""``segment_changed``: the RFM segment differs from the last one seen (episode: the time of
the change and the new segment). Its timers are the recency cuts, where R drops."""

from __future__ import annotations

import math
from typing import Any

from schemas.outputs import AlertType, Severity
from scorers.alert_rules.base import (
    DAY,
    CheckpointStep,
    RuleDefaults,
    Timeline,
    silence_reason,
)
from scorers.alerts import AlertDraft
from scorers.customer_state import CustomerState
from scorers.profile import Profile

__all__ = ["SegmentChanged"]


class SegmentChanged(RuleDefaults):
    """Owns the last segment seen."""

    owns: tuple[str, ...] = ("segment",)

    def at_checkpoint(self, step: CheckpointStep, changes: dict[str, Any]) -> list[AlertDraft]:
        segment, state = step.segment, step.state
        if segment is None:
            return []
        changes["segment"] = segment
        if state.segment is None or segment == state.segment:
            return []
        reasons = [f"moved from {state.segment} to {segment}"]
        if step.trigger == "timer" and step.profile.last_purchase_at is not None:
            reasons.append(silence_reason(step.profile, step.at))
        return [
            AlertDraft(
                AlertType.SEGMENT_CHANGED,
                Severity.INFO,
                f"segment_changed:{step.customer_id}:{step.at}:{segment}",
                reasons,
                {"from": state.segment, "to": segment, "trigger": step.trigger},
            )
        ]

    def next_due(
        self, timeline: Timeline, state: CustomerState, profile: Profile, after: int
    ) -> int | None:
        last = profile.last_purchase_at
        if timeline.boundaries is None or last is None:
            return None
        cut = timeline.boundaries.next_recency_cut(max(0.0, (after - last) / DAY))
        # R drops once recency *exceeds* the cut: the first whole second past it.
        return None if cut is None else math.floor(last + cut * DAY) + 1
