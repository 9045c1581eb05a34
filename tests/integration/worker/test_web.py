"""The worker's /metrics and /health pages, read from a running worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from crm_core.settings import Settings
from schemas import example_json
from tests.integration.harness import WorkerProcess, http_get, wait_caught_up

pytestmark = pytest.mark.integration


async def test_metrics_and_health_report_what_the_worker_did(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    await worker.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for i in range(5):
            value = example_json("order_placed", {"event_id": f"o-{i}"})
            await producer.send(settings.topic("purchase"), value, key=b"c-42")
        again = example_json("order_placed", {"event_id": "o-0"})  # re-sent: a duplicate
        await producer.send(settings.topic("purchase"), again, key=b"c-42")
        await producer.send(settings.topic("service"), b"{not json", key=b"c-42")
        await producer.flush()
        await wait_caught_up(settings, [worker])
        base = f"http://127.0.0.1:{worker.web_port}"
        status, body = await asyncio.to_thread(http_get, f"{base}/metrics")
        health_status, health_body = await asyncio.to_thread(http_get, f"{base}/health")
    finally:
        await producer.stop()
        await worker.stop()
    assert status == 200, worker.log_tail()
    text = body.decode()
    assert 'crm_events_total{topic="purchase",type="order_placed"} 5.0' in text
    assert 'crm_deadletters_total{reason="not_json"} 1.0' in text
    assert "crm_consumed_total 7.0" in text
    assert "crm_event_to_score_seconds_count 5.0" in text
    assert health_status == 200
    health = orjson.loads(health_body)
    assert health["ok"] is True
    assert health["applied"] == 5
    assert health["duplicates"] == 1
    assert health["dead_letters"] == {"not_json": 1}
