"""The five value x risk groups: where a customer stands on worth and on the risk of leaving.

From the customer's CLV against the value-tier cut and their churn probability against a
threshold (both in settings; the cut defaults to the probability model's top-tier CLV):

- ``high_value_stable``, ``high_value_at_risk``, ``low_value_stable``, ``low_value_at_risk``;
- ``no_value``: no orders yet, or no net spend (refunds ate it all).

A customer without a CLV or a churn score yet has no group (None).

>>> policy = ValueGroupPolicy(churn_threshold=0.5)
>>> policy.group(orders=3, net_minor=9_000, clv=52_000.0, churn=0.8, high_value_clv=40_000.0)
'high_value_at_risk'
>>> policy.group(orders=0, net_minor=0, clv=None, churn=None, high_value_clv=40_000.0)
'no_value'
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.outputs import AlertType, Severity
from scorers.alerts import AlertDraft

__all__ = ["VALUE_GROUPS", "ValueGroupPolicy"]

#: Every group, and how people call it.
VALUE_GROUPS: dict[str, str] = {
    "high_value_stable": "high value & stable",
    "high_value_at_risk": "high value & likely to churn",
    "low_value_stable": "low value & stable",
    "low_value_at_risk": "low value & likely to churn",
    "no_value": "no value",
}


@dataclass(frozen=True, slots=True)
class ValueGroupPolicy:
    """Thresholds of the groups (from settings); ``high_value_clv`` None: the model's cut."""

    churn_threshold: float = 0.5
    high_value_clv: float | None = None

    def group(
        self,
        *,
        orders: int,
        net_minor: int,
        clv: float | None,
        churn: float | None,
        high_value_clv: float | None,
    ) -> str | None:
        """The group, or None while CLV, churn or the value cut are unknown."""
        if orders <= 0 or net_minor <= 0:
            return "no_value"
        cut = self.high_value_clv if self.high_value_clv is not None else high_value_clv
        if clv is None or churn is None or cut is None:
            return None
        value = "high_value" if clv >= cut else "low_value"
        return f"{value}_{'at_risk' if churn >= self.churn_threshold else 'stable'}"

    @staticmethod
    def changed(customer_id: str, before: str, after: str, at: int) -> AlertDraft:
        """The ``value_group_changed`` alert of a move between groups."""
        worse = after.endswith("_at_risk") or after == "no_value"
        return AlertDraft(
            AlertType.VALUE_GROUP_CHANGED,
            Severity.WARNING if worse else Severity.INFO,
            f"value_group_changed:{customer_id}:{at}:{after}",
            [f"moved from {VALUE_GROUPS[before]} to {VALUE_GROUPS[after]}"],
            {"from": before, "to": after},
        )
