"""Consent through a real worker: every published alert says whether its customer could be
contacted at the alert's event time, and no marketing action goes out for one who could not."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from schemas import Alert
from scorers.consent import MARKETING_ACTIONS
from tests.integration.faults import fault_settings, make_history, publish_models, read_all
from tests.integration.harness import WorkerProcess, valid_events, wait_caught_up
from tests.integration.test_erase import wipe

pytestmark = pytest.mark.integration

_WITHDRAWALS = ("message_unsubscribed", "consent_withdrawn")


async def test_alerts_carry_contactable_and_marketing_actions_respect_it(
    base_settings: Settings, tmp_path: Path
) -> None:
    history = make_history(customers=300, seed=5, malformed=0.0)
    settings = fault_settings(base_settings, history)
    first_withdrawal: dict[str, float] = {}
    for event in valid_events((m.kind, m.key, m.value) for m in history.messages):
        if event.type in _WITHDRAWALS:
            at = event.event_time.timestamp()
            first_withdrawal[event.customer_id] = min(
                first_withdrawal.get(event.customer_id, at), at
            )
    assert first_withdrawal, "the history needs customers who unsubscribed"

    await publish_models(settings, history)
    await produce_messages(settings, history.messages)
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
        withdrawn = first_withdrawal.get(alert.customer_id)
        expected = withdrawn is None or withdrawn > alert.event_time.timestamp()
        assert alert.contactable == expected, orjson.dumps(alert.model_dump(mode="json"))
        assert alert.contactable or alert.alert_type not in MARKETING_ACTIONS
    not_contactable = [a for a in about_customers if not a.contactable]
    assert not_contactable, "no alert about a customer who had unsubscribed: nothing was checked"
    print(
        f"\n{len(about_customers)} alerts, {len(not_contactable)} about customers not contactable"
    )
    await wipe(settings, keep_suppression=False)  # the shared Redis is scanned by other tests
