"""Consent: unsubscribed customers get no marketing-action alerts, the others say contactable."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas import AlertType, MarketingEvent, example_event_dict
from scorers.alerts import AlertPolicy
from scorers.consent import MARKETING_ACTIONS, contactable, publishable
from scorers.deltas import delta_for
from scorers.profile import Profile, apply_delta
from scorers.segments import load_segments
from scorers.timeline import CustomerState, Timeline
from streams.round.messages import Applied
from streams.round.scorer import CustomerBefore, RoundScorer
from tests.oracle import recompute_profiles
from tests.unit.hand_built import BOUNDS, DAY, T0, Record, profile_of, purchase_event


def _marketing(event_type: str, at: int) -> MarketingEvent:
    raw = example_event_dict("message_sent")
    raw.update(
        type=event_type,
        customer_id="c",
        event_id=f"{event_type}-{at}",
        event_time=datetime.fromtimestamp(at, UTC).isoformat(),
    )
    return MarketingEvent.model_validate(raw)


@pytest.mark.parametrize("event_type", ["message_unsubscribed", "consent_withdrawn"])
def test_an_unsubscribe_or_a_consent_withdrawal_ends_contactability(event_type: str) -> None:
    event = _marketing(event_type, T0)
    after = apply_delta(Profile(), delta_for(event, {"USD": 1.0}))
    assert contactable(Profile()) and not contactable(after)
    assert after == recompute_profiles([event])["c"]  # the batch oracle agrees


def test_consent_given_after_the_last_withdrawal_makes_the_customer_contactable_again() -> None:
    withdrawn = _marketing("consent_withdrawn", T0)
    given = _marketing("consent_given", T0 + DAY)
    unsubscribed_later = _marketing("message_unsubscribed", T0 + 2 * DAY)

    def fold(*events: MarketingEvent) -> Profile:
        profile = Profile()
        for event in events:
            profile = apply_delta(profile, delta_for(event, {"USD": 1.0}))
        assert profile == recompute_profiles(list(events))["c"]  # the batch oracle agrees
        return profile

    assert contactable(fold(withdrawn, given))
    assert contactable(fold(given, withdrawn)) is True  # event time decides, not arrival
    assert not contactable(fold(withdrawn, given, unsubscribed_later))
    assert not contactable(fold(unsubscribed_later, given, withdrawn))
    assert contactable(fold(given))  # an opt-in with nothing to undo
    same_second = _marketing("consent_given", T0)
    assert not contactable(fold(withdrawn, same_second))  # a tie keeps the withdrawal
    assert fold(given).messages_sent == 0 and fold(given).unsubscribes == 0  # counts nothing


@pytest.mark.parametrize("alert_type", list(AlertType))
def test_only_marketing_actions_are_held_back(alert_type: AlertType) -> None:
    held = not publishable(alert_type, contactable=False)
    assert held == (alert_type in MARKETING_ACTIONS)
    assert publishable(alert_type, contactable=True)
    assert publishable(alert_type, contactable=False, when_not=True)


def _win_back_round(*, unsubscribed: bool, when_not: bool) -> list[dict[str, object]]:
    """A customer buys again 200 days after their first order: a win-back checkpoint."""
    back = T0 + 200 * DAY
    profile = profile_of(T0, back)
    if unsubscribed:
        profile = profile._replace(unsubscribes=1, last_unsubscribe_at=T0 + DAY)
    applied = [Applied(Record(), purchase_event(back, "back"), profile, float(back), False)]
    state = CustomerState(evaluated_at=back - DAY, last_purchase_at=T0)
    before = {"c": CustomerBefore(profile_of(T0), state, 0)}
    scorer = RoundScorer(
        Timeline(AlertPolicy(), load_segments(), BOUNDS, None),
        marketing_when_not_contactable=when_not,
    )
    out = scorer.score(applied, before, {0: back})
    assert [orjson.loads(m.value)["event_id"] for m in out.snapshots] == ["back"]  # still scored
    return [orjson.loads(m.value) for _, _, m in out.alerts]


def test_a_win_back_for_a_contactable_customer_is_published_and_says_so() -> None:
    alerts = _win_back_round(unsubscribed=False, when_not=False)
    assert [(a["alert_type"], a["contactable"]) for a in alerts] == [("win_back", True)]


def test_a_win_back_for_an_unsubscribed_customer_is_held_back() -> None:
    assert _win_back_round(unsubscribed=True, when_not=False) == []


def test_the_setting_publishes_it_marked_not_contactable() -> None:
    alerts = _win_back_round(unsubscribed=True, when_not=True)
    assert [(a["alert_type"], a["contactable"]) for a in alerts] == [("win_back", False)]
