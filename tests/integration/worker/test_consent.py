"""Consent through a real worker: every published alert says whether its customer could be
contacted at the alert's event time, and no marketing action goes out for one who could not.
Half of the customers who withdrew opt in again 30 days later (``consent_given``)."""

from __future__ import annotations

import bisect
import dataclasses
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.simulate import SimulatedMessage
from schemas import Alert
from scorers.consent import MARKETING_ACTIONS
from tests.integration.harness import WorkerProcess, valid_events, wait_caught_up
from tests.integration.histories import fault_settings, make_history, publish_models, read_all
from tests.integration.keyspace import wipe

pytestmark = pytest.mark.integration

_WITHDRAWALS = ("message_unsubscribed", "consent_withdrawn")


def _with_opt_ins(messages: list[SimulatedMessage]) -> list[SimulatedMessage]:
    """``messages`` with a ``consent_given`` 30 days after the first withdrawal of every other
    customer who withdrew (inside the history), each placed in event-time order."""
    firsts: dict[str, SimulatedMessage] = {}
    for message in (m for m in messages if m.fault is None):  # valid events only
        event = orjson.loads(message.value)
        if event["type"] in _WITHDRAWALS:
            firsts.setdefault(event["customer_id"], message)
    out, times = list(messages), [m.event_time for m in messages]
    for customer in sorted(firsts)[::2]:
        withdrawal = firsts[customer]
        at = withdrawal.event_time + timedelta(days=30)
        if at >= times[-1]:
            continue  # past the history's end: the replay clock would hold it back
        event = orjson.loads(withdrawal.value)
        event.update(type="consent_given", event_id=f"opt-in-{customer}", event_time=at.isoformat())
        event["payload"] = {"campaign_id": "preference-centre", "channel": "email"}
        opt_in = dataclasses.replace(withdrawal, value=orjson.dumps(event), event_time=at)
        index = bisect.bisect(times, at)
        out.insert(index, opt_in)
        times.insert(index, at)
    return out


async def test_alerts_carry_contactable_and_marketing_actions_respect_it(
    base_settings: Settings, tmp_path: Path
) -> None:
    history = make_history(customers=300, seed=5, malformed=0.0)
    settings = fault_settings(base_settings, history)
    messages = _with_opt_ins(history.messages)
    changes: dict[str, list[tuple[float, bool]]] = {}  # per customer: (time, contactable after)
    for event in valid_events((m.kind, m.key, m.value) for m in messages):
        if event.type in _WITHDRAWALS or event.type == "consent_given":
            changes.setdefault(event.customer_id, []).append(
                (event.event_time.timestamp(), event.type == "consent_given")
            )
    assert any(not ok for c in changes.values() for _, ok in c), "nobody unsubscribed"
    assert any(ok for c in changes.values() for _, ok in c), "nobody opted in again"

    def contactable_at(customer: str, at: float) -> bool:
        # Newest change at or before ``at`` decides; a tie keeps the withdrawal (False sorts first).
        before = sorted(change for change in changes.get(customer, []) if change[0] <= at)
        latest = [ok for t, ok in before if t == before[-1][0]] if before else [True]
        return all(latest)

    await publish_models(settings, history)
    await produce_messages(settings, messages)
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    try:
        await worker.start()
        await wait_caught_up(settings, [worker], timeout=240)
    finally:
        await worker.stop()

    alerts = [Alert.from_json_bytes(v) for v in await read_all(settings, "alerts")]
    about_customers = [a for a in alerts if a.customer_id is not None]
    assert about_customers
    for alert in about_customers:
        assert alert.customer_id is not None
        expected = contactable_at(alert.customer_id, alert.event_time.timestamp())
        assert alert.contactable == expected, orjson.dumps(alert.model_dump(mode="json"))
        assert alert.contactable or alert.alert_type not in MARKETING_ACTIONS
    not_contactable = [a for a in about_customers if not a.contactable]
    assert not_contactable, "no alert about a customer who had unsubscribed: nothing was checked"
    opted_in = [  # contactable again: an opt-in after a withdrawal, both before the alert
        a
        for a in about_customers
        if a.contactable
        and a.customer_id is not None
        and any(ok for t, ok in changes.get(a.customer_id, []) if t <= a.event_time.timestamp())
    ]
    assert opted_in, "no alert about a customer who had opted in again: nothing was checked"
    print(
        f"\n{len(about_customers)} alerts, {len(not_contactable)} about customers not contactable, "
        f"{len(opted_in)} about customers contactable again"
    )
    await wipe(settings, keep_suppression=False)  # the shared Redis is scanned by other tests
