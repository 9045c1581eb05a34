"""The alert a cross-sell rule raises for one customer's order (:mod:`scorers.cross_sell`
finds the rule, :mod:`streams.state.cross_sell_counts` decides it from the round's counters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas import Alert, AlertType, Severity
from scorers.cross_sell import CrossSellRule, idempotency_key
from streams.round.messages import OutputMessage

__all__ = ["CrossSellDraft"]


@dataclass(frozen=True, slots=True)
class CrossSellDraft:
    """A rule to suggest to a customer, raised by one of their orders."""

    customer_id: str
    partition: int
    event_time: datetime
    event_id: str
    order_id: str
    rule: CrossSellRule
    contactable: bool = True

    @property
    def idempotency_key(self) -> str:
        """``cross_sell:<customer>:<A>:<B>``."""
        return idempotency_key(self.customer_id, self.rule.antecedent, self.rule.consequent)

    def alert(self) -> Alert:
        """The ``cross_sell`` alert."""
        r = self.rule
        return Alert(
            alert_type=AlertType.CROSS_SELL,
            severity=Severity.INFO,
            customer_id=self.customer_id,
            event_time=self.event_time,
            idempotency_key=self.idempotency_key,
            reasons=[r.reason()],
            details={
                "antecedent": r.antecedent,
                "consequent": r.consequent,
                "confidence": round(r.confidence, 4),
                "lift": round(r.lift, 4),
                "support": round(r.support, 4),
                "customers_with_both": round(r.count, 3),
                "antecedent_customers": round(r.antecedent_count, 3),
                "consequent_customers": round(r.consequent_count, 3),
                "customers": round(r.customers, 3),
                "order_id": self.order_id,
                "event_id": self.event_id,
            },
            contactable=self.contactable,
        )

    def message(self) -> tuple[str, str, OutputMessage]:
        """As an entry of :attr:`streams.round.scorer.ScoredRound.alerts`."""
        value = self.alert().to_json_bytes()
        return (
            self.customer_id,
            self.idempotency_key,
            OutputMessage(self.partition, self.customer_id.encode(), value),
        )
