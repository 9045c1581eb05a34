"""The five value x risk groups: where a customer stands on worth and on the risk of leaving.

From the customer's value tier and their risk of leaving (thresholds in settings; the value
cut defaults to the probability model's top-tier CLV):

- *high value*: the customer's CLV at their last purchase was at or over the cut (the tier the
  walk keeps in ``CustomerState.high_value``, which the ``high_value_at_risk`` alert uses too);
  before any purchase was scored with a model, their current CLV against the cut. The current
  CLV already discounts by P(alive), so judged by it a customer at risk is nearly always "low
  value": a silent top-tier customer would read ``low_value_at_risk`` on the very snapshot that
  raised their ``high_value_at_risk`` alert.
- *likely to churn*: the churn probability at or over its threshold, or a
  ``high_value_at_risk`` alert raised in the current silence (P(alive) fell under the alert's
  threshold: the two never disagree).

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

    def cut(self, high_value_clv: float | None) -> float | None:
        """The value cut in force: the setting, else the model's (``high_value_clv``)."""
        return self.high_value_clv if self.high_value_clv is not None else high_value_clv

    def group(
        self,
        *,
        orders: int,
        net_minor: int,
        clv: float | None,
        churn: float | None,
        high_value_clv: float | None,
        tier: bool | None = None,
        alerted: bool = False,
    ) -> str | None:
        """The group, or None while CLV, churn or the value cut are unknown.

        ``tier``: whether the CLV at the last purchase was in the top tier (None: no purchase
        was scored with a model yet; the current ``clv`` decides). ``alerted``: a
        ``high_value_at_risk`` alert was raised in the current silence.
        """
        if orders <= 0 or net_minor <= 0:
            return "no_value"
        cut = self.cut(high_value_clv)
        if clv is None or churn is None or cut is None:
            return None
        high = clv >= cut if tier is None else tier
        risky = alerted or churn >= self.churn_threshold
        return f"{'high' if high else 'low'}_value_{'at_risk' if risky else 'stable'}"

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
