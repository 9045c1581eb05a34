"""One producer whose clock runs 270 s ahead (inside the accepted future skew) on the live
clock (shared Kafka and Redis): its event must not drag the partition's watermark forward, or
every other customer's events arriving after it are late and fire no alert. Ten customers
silent for 200 days buy again after it: ten win-back alerts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from crm_core.settings import Settings
from crm_score.event_files import FileMessage
from crm_score.produce import produce_messages
from schemas import example_event_dict
from streams.ingest.topics import ensure_topics
from tests.integration.harness import WorkerProcess, read_topic

pytestmark = pytest.mark.integration
SKEW = timedelta(seconds=270)
OTHERS = [f"cust-w{i}" for i in range(10)]


def _order(customer: str, event_id: str, at: datetime) -> FileMessage:
    raw = example_event_dict("order_placed")
    raw.update(customer_id=customer, event_id=event_id, event_time=at.isoformat())
    return FileMessage("purchase", customer.encode(), orjson.dumps(raw), 0)


async def test_one_fast_producer_clock_does_not_make_other_customers_late(
    isolated_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    settings = isolated_settings.model_copy(update={"partitions": 1})
    await ensure_topics(settings)  # input topics stamped with the broker's append time
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))

    def applied(count: int) -> Callable[[dict[str, object]], bool]:
        return lambda health: health.get("applied") == count

    try:
        await worker.start()
        await worker.wait_ready()
        now = datetime.now(UTC)
        await produce_messages(settings, [_order(c, f"{c}-old", now - timedelta(days=200))
                                          for c in OTHERS])  # fmt: skip
        await worker.wait_health(applied(len(OTHERS)), "the old orders were not applied")
        late = worker.health()["late"]  # the old orders came after the idle clock passed them
        # The fast producer's order: it waits for the watermark to pass its own time...
        await produce_messages(settings, [_order("cust-fast", "fast-1", now + SKEW)])
        await worker.wait_health(lambda h: h.get("buffered") == 1, "the fast order was not seen")
        # ... and must not make the others' orders, sent after it, late.
        now = datetime.now(UTC)
        await produce_messages(settings, [_order(c, f"{c}-new", now) for c in OTHERS])
        await worker.wait_health(applied(2 * len(OTHERS)), "the new orders were not applied")
        health = worker.health()
    finally:
        await worker.stop()
    alerts = [orjson.loads(v) for v in await read_topic(settings, "alerts", len(OTHERS), 20)]
    win_backs = sorted(a["customer_id"] for a in alerts if a["alert_type"] == "win_back")
    assert win_backs == OTHERS, (win_backs, health)
    assert health["late"] == late, health
