"""What an alert rule decides (:class:`AlertDraft`) and the rules' thresholds.

:class:`AlertPolicy` holds the thresholds of the timeline's rules (:mod:`scorers.timeline`);
:class:`EscalationPolicy` is the ``service_escalation`` rule: complaints or negative ticket
sentiment pile up for a high-value customer.

It looks at the customer's recent activity (30-day decayed counts, see
:class:`scorers.churn_features.RecentActivity`) after each service event. An episode opens when
either signal passes its threshold for a customer in the top value tier and closes once both
are back under it, so one spike raises one alert.

>>> from scorers.churn_features import RecentActivity
>>> recent = RecentActivity()
>>> for at in (0, 3_600, 7_200):
...     recent = recent.add("complaints", at)
>>> rule = EscalationPolicy()
>>> opened, draft = rule.check("c-1", recent, 7_200, high_value=True, escalated=False)
>>> opened, draft.reasons[0]
(True, 'about 3 complaints in 30 days')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from schemas.outputs import AlertType, Severity
from scorers.churn_features import RecentActivity

__all__ = ["AlertDraft", "AlertPolicy", "EscalationPolicy"]


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """Thresholds of the alert rules (from settings)."""

    p_alive_threshold: float = 0.3
    win_back_after_days: float = 90.0

    def __post_init__(self) -> None:
        if not 0 < self.p_alive_threshold < 1:
            raise ValueError(f"p_alive_threshold must be in (0, 1), got {self.p_alive_threshold}")
        if self.win_back_after_days <= 0:
            raise ValueError(f"win_back_after_days must be > 0, got {self.win_back_after_days}")


class AlertDraft(NamedTuple):
    """An alert decided at a checkpoint; the caller adds the checkpoint's scores."""

    alert_type: AlertType
    severity: Severity
    idempotency_key: str
    reasons: list[str]
    details: dict[str, object]


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """Thresholds of the rule (from settings)."""

    complaints: float = 2.0  # decayed complaints in 30 days
    sentiment: float = -0.3  # mean sentiment score of recent ticket texts
    min_texts: float = 2.0  # decayed texts the mean needs

    def check(
        self,
        customer_id: str,
        recent: RecentActivity,
        at: int,
        *,
        high_value: bool,
        escalated: bool,
    ) -> tuple[bool, AlertDraft | None]:
        """(episode open after ``at``, the alert to raise if it opened now)."""
        complaints = recent.value("complaints", at)
        texts = recent.value("texts", at)
        sentiment = recent.mean_sentiment(at)
        negative = sentiment is not None and texts >= self.min_texts and sentiment <= self.sentiment
        hot = complaints >= self.complaints or negative
        if not hot:
            return False, None
        if escalated or not high_value:
            return escalated, None
        reasons = []
        if complaints >= self.complaints:
            reasons.append(f"about {round(complaints)} complaints in 30 days")
        if negative and sentiment is not None:
            reasons.append(f"recent ticket texts are negative (sentiment {sentiment:+.2f})")
        reasons.append("customer is in the top value tier")
        draft = AlertDraft(
            AlertType.SERVICE_ESCALATION,
            Severity.WARNING,
            f"service_escalation:{customer_id}:{at}",
            reasons,
            {
                "complaints_30d": round(complaints, 3),
                "sentiment_30d": None if sentiment is None else round(sentiment, 4),
            },
        )
        return True, draft
