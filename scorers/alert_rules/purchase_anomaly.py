"""``purchase_anomaly``: an order unlike the customer's usual ones (:mod:`scorers.anomaly`;
episode: the order's event id). Scored at late orders too (their history counts), never
alerted for them."""

from __future__ import annotations

from typing import Any

from schemas.outputs import AlertType
from scorers.alert_rules.base import EventStep, RuleDefaults
from scorers.alerts import AlertDraft

__all__ = ["PurchaseAnomaly"]


class PurchaseAnomaly(RuleDefaults):
    """Owns the customer's recent purchase amounts (the anomaly scorer's history)."""

    owns: tuple[str, ...] = ("purchases",)

    def at_event(self, step: EventStep, changes: dict[str, Any]) -> list[AlertDraft]:
        anomaly = step.timeline.anomaly
        if step.order is None or anomaly is None:
            return []
        event_id, event_type, amount = step.order
        purchases, verdict = anomaly.score(
            step.state.purchases, event_type, step.at, amount, late=step.late
        )
        changes["purchases"] = purchases
        if verdict is None or not verdict.anomalous:
            return []
        return [
            AlertDraft(
                AlertType.PURCHASE_ANOMALY,
                verdict.severity,
                f"purchase_anomaly:{step.customer_id}:{event_id}",
                verdict.reasons,
                verdict.details(),
            )
        ]
