"""Value x risk groups and service escalation, through the round scorer on hand-built histories."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from crm_core.settings import Settings
from schemas import ServiceEvent, example_event_dict
from scorers.churn_features import signal_of
from scorers.profile import Profile
from scorers.timeline import CustomerState
from scorers.value_groups import VALUE_GROUPS, ValueGroupPolicy
from streams.round.messages import Applied
from streams.round.scorer import CustomerBefore, round_scorer
from tests.unit.hand_built import BOUNDS, DAY, MODEL, T0, Record


@pytest.mark.parametrize(
    ("orders", "net", "clv", "churn", "expected"),
    [
        (0, 0, None, None, "no_value"),
        (2, -500, 100.0, 0.9, "no_value"),  # refunds ate the spend
        (3, 9000, 50_000.0, 0.2, "high_value_stable"),
        (3, 9000, 50_000.0, 0.6, "high_value_at_risk"),
        (3, 9000, 1_000.0, 0.2, "low_value_stable"),
        (3, 9000, 1_000.0, 0.5, "low_value_at_risk"),  # the threshold itself is at risk
        (3, 9000, None, 0.5, None),  # no CLV yet: no group
    ],
)
def test_groups(
    orders: int, net: int, clv: float | None, churn: float | None, expected: str | None
) -> None:
    policy = ValueGroupPolicy(churn_threshold=0.5)
    group = policy.group(orders=orders, net_minor=net, clv=clv, churn=churn, high_value_clv=40e3)
    assert group == expected
    assert group is None or group in VALUE_GROUPS


def test_a_configured_cut_overrides_the_models() -> None:
    policy = ValueGroupPolicy(churn_threshold=0.5, high_value_clv=500.0)
    assert policy.group(orders=1, net_minor=10, clv=600.0, churn=0.1, high_value_clv=40e3) == (
        "high_value_stable"
    )


def _ticket(at: int, n: int, text: str, complaint: bool) -> ServiceEvent:
    raw = example_event_dict("ticket_opened")
    raw.update(customer_id="c", event_id=f"t{n}", event_time=datetime.fromtimestamp(at, UTC))
    raw["payload"].update(ticket_id=f"k{n}", complaint=complaint, text=text)
    return ServiceEvent.model_validate(raw)


def test_complaints_of_a_high_value_customer_escalate_once() -> None:
    scorer = round_scorer(Settings())
    profile = Profile(first_purchase_at=T0, last_purchase_at=T0, orders=1, gross_minor=5000)
    texts = ["This is unacceptable, I am furious.", "Terrible service, never again.", "Awful."]
    applied = []
    for n in range(5):  # three angry complaints, then two more inside the same episode
        at = T0 + DAY + n * 3600
        ticket = _ticket(at, n, texts[n % 3], complaint=True)
        applied.append(Applied(Record(topic="crm.service", offset=n), ticket, profile, at, False))
    state = CustomerState(evaluated_at=T0, last_purchase_at=T0, high_value=True)
    before = {"c": CustomerBefore(profile, state, 0)}

    out = scorer.score(applied, before, {0: T0 + 2 * DAY})

    escalations = [k for _, k, _ in out.alerts if k.startswith("service_escalation:")]
    # Two complaints an hour apart decay to 1.9986 < 2: the third one opens the episode.
    assert escalations == [f"service_escalation:c:{T0 + DAY + 2 * 3600}"]
    alert = orjson.loads(next(m.value for _, k, m in out.alerts if k == escalations[0]))
    assert alert["reasons"][:2] == [
        "about 3 complaints in 30 days",
        f"recent ticket texts are negative (sentiment {alert['details']['sentiment_30d']:+.2f})",
    ]
    assert out.states["c"].escalated


def test_a_customer_outside_the_top_tier_does_not_escalate() -> None:
    scorer = round_scorer(Settings())
    profile = Profile(first_purchase_at=T0, last_purchase_at=T0, orders=1, gross_minor=5000)
    applied = [
        Applied(Record(offset=n), _ticket(T0 + n, n, "Awful.", True), profile, T0 + n, False)
        for n in range(1, 4)
    ]
    before = {"c": CustomerBefore(profile, CustomerState(evaluated_at=T0), 0)}
    out = scorer.score(applied, before, {0: T0 + DAY})
    assert not [k for _, k, _ in out.alerts if k.startswith("service_escalation:")]


def test_ticket_text_sentiment_feeds_recent_activity() -> None:
    signals = dict(signal_of(_ticket(T0, 1, "Terrible service, never again.", True)))
    assert signals["texts"] == 1.0 and signals["sentiment"] < -0.05
    assert signals["negative_texts"] == 1.0 and signals["complaints"] == 1.0
    friendly = dict(signal_of(_ticket(T0, 2, "Thank you, that was quick!", False)))
    assert friendly["sentiment"] > 0 and "negative_texts" not in friendly


def test_a_silent_high_value_customer_moves_to_at_risk_once() -> None:
    scorer = round_scorer(Settings())
    scorer.timeline.boundaries, scorer.timeline.model = BOUNDS, replace(MODEL, high_value_clv=1.0)
    last = T0 + 60 * DAY
    profile = Profile(
        first_purchase_at=T0, last_purchase_at=last, orders=8, gross_minor=80_000
    )  # fmt: skip
    state = CustomerState(
        evaluated_at=last, last_purchase_at=last, high_value=True, value_group="high_value_stable"
    )  # fmt: skip
    out = scorer.score([], {"c": CustomerBefore(profile, state, 0)}, {0: last + 400 * DAY})

    snapshots = [orjson.loads(m.value) for m in out.snapshots]
    groups = [s["value_group"] for s in snapshots]
    assert groups[-1] == "high_value_at_risk"  # 1 - P(alive) passed 0.5 in the silence
    changes = [orjson.loads(m.value) for _, k, m in out.alerts if k.startswith("value_group")]
    assert [c["details"] for c in changes] == [
        {"from": "high_value_stable", "to": "high_value_at_risk"}
    ]
    assert out.states["c"].value_group == "high_value_at_risk"
