"""``win_back``: a purchase after at least ``win_back_after_days`` without one (episode: the
purchase time)."""

from __future__ import annotations

from typing import Any

from schemas.outputs import AlertType, Severity
from scorers.alert_rules.base import (
    DAY,
    EventStep,
    RuleDefaults,
    usual_gap_days,
)
from scorers.alerts import AlertDraft

__all__ = ["WinBack"]


class WinBack(RuleDefaults):
    """Reads the last purchase before the event; owns no state."""

    def at_event(self, step: EventStep, changes: dict[str, Any]) -> list[AlertDraft]:
        previous = step.previous_purchase
        if not step.purchase or previous is None or step.late:
            return []
        gap_days = (step.at - previous) / DAY
        if gap_days < step.timeline.policy.win_back_after_days:
            return []
        reasons = [f"first purchase in {gap_days:.0f} days"]
        profile = step.profile
        usual = usual_gap_days(profile.first_purchase_at, previous, profile.orders - 1)
        if usual is not None:
            reasons.append(f"usually bought every {usual:.0f} days")
        return [
            AlertDraft(
                AlertType.WIN_BACK,
                Severity.INFO,
                f"win_back:{step.customer_id}:{step.at}",
                reasons,
                {"silent_days": round(gap_days, 2), "previous_purchase_at": previous},
            )
        ]
