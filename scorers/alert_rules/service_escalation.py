"""``service_escalation``: complaints or negative ticket sentiment in the customer's recent
service activity (:class:`scorers.alerts.EscalationPolicy`); not for late events."""

from __future__ import annotations

from typing import Any

from scorers.alert_rules.base import EventStep, RuleDefaults
from scorers.alerts import AlertDraft

__all__ = ["ServiceEscalation"]


class ServiceEscalation(RuleDefaults):
    """Owns whether an escalation episode is open."""

    owns: tuple[str, ...] = ("escalated",)

    def at_event(self, step: EventStep, changes: dict[str, Any]) -> list[AlertDraft]:
        escalation, state = step.timeline.escalation, step.state
        if not step.signals or escalation is None or step.late:
            return []
        escalated, draft = escalation.check(
            step.customer_id,
            step.changes.get("recent", state.recent),
            step.at,
            high_value=step.changes.get("high_value", state.high_value),
            escalated=state.escalated,
        )
        if escalated != state.escalated:
            changes["escalated"] = escalated
        return [] if draft is None else [draft]
