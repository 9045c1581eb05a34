"""The timeline's alert rules, one module each, behind one protocol (:class:`AlertRule`).

A new rule is a new module here with a class that has the protocol's three methods and names
the :class:`~scorers.customer_state.CustomerState` fields it owns, added to
:func:`default_rules` (the order there is the order of the alerts of one event or checkpoint).
"""

from scorers.alert_rules.base import AlertRule, CheckpointStep, EventStep
from scorers.alert_rules.high_value_at_risk import HighValueAtRisk
from scorers.alert_rules.purchase_anomaly import PurchaseAnomaly
from scorers.alert_rules.segment_changed import SegmentChanged
from scorers.alert_rules.service_escalation import ServiceEscalation
from scorers.alert_rules.win_back import WinBack

__all__ = [
    "AlertRule",
    "CheckpointStep",
    "EventStep",
    "HighValueAtRisk",
    "PurchaseAnomaly",
    "SegmentChanged",
    "ServiceEscalation",
    "WinBack",
    "default_rules",
]


def default_rules() -> tuple[AlertRule, ...]:
    """Every rule, in alert order: at an event ``win_back``, ``purchase_anomaly``,
    ``service_escalation``; at a checkpoint ``segment_changed``, ``high_value_at_risk``."""
    return (SegmentChanged(), HighValueAtRisk(), WinBack(), PurchaseAnomaly(), ServiceEscalation())
