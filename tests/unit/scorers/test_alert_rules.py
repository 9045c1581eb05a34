"""The timeline's rules behind one protocol (scorers.alert_rules): each owns a slice of the
customer state no other rule writes, and a rule added to a timeline alerts like the shipped
ones, without a change to the timeline."""

from __future__ import annotations

from typing import Any

from schemas.outputs import AlertType, Severity
from scorers.alert_rules import AlertRule, EventStep, default_rules
from scorers.alert_rules.base import RuleDefaults
from scorers.alerts import AlertDraft, AlertPolicy
from scorers.customer_state import CustomerState
from scorers.profile import Profile
from scorers.segments import load_segments
from scorers.timeline import Timeline
from tests.unit.hand_built import BOUNDS, DAY, MODEL, T0


def test_each_rule_owns_fields_of_the_customer_state_no_other_rule_owns() -> None:
    owned = [field for rule in default_rules() for field in rule.owns]
    assert len(owned) == len(set(owned))
    assert set(owned) <= set(CustomerState._fields)


class BigOrder(RuleDefaults):
    """A rule of the test's own: an order of at least 100.00 at one event."""

    def at_event(self, step: EventStep, changes: dict[str, Any]) -> list[AlertDraft]:
        if step.order is None or step.order[2] < 10_000:
            return []
        key = f"big_order:{step.customer_id}:{step.order[0]}"
        return [AlertDraft(AlertType.PURCHASE_ANOMALY, Severity.INFO, key, ["big"], {})]


def test_a_rule_added_to_the_timeline_alerts_after_the_shipped_ones() -> None:
    rules: tuple[AlertRule, ...] = (*default_rules(), BigOrder())
    timeline = Timeline(AlertPolicy(0.3, 90.0), load_segments(), BOUNDS, MODEL, rules=rules)
    profile = Profile(first_purchase_at=T0, last_purchase_at=T0 + 200 * DAY, orders=2)
    state = CustomerState(evaluated_at=T0, last_purchase_at=T0)
    _, point = timeline.event(
        "c", state, profile, T0 + 200 * DAY, purchase=True, clv=None, order=("o2", "order", 20_000)
    )
    keys = [a.idempotency_key for a in point.alerts]
    assert keys[:2] == [f"win_back:c:{T0 + 200 * DAY}", "big_order:c:o2"]
    _, late = timeline.event(
        "c", state, profile, T0 + DAY, purchase=True, clv=None, late=True, order=("o1", "o", 1)
    )
    assert late.alerts == []  # never for the past
