"""A running worker picks up newly published models: P(alive)/CLV and RFM segments."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.simulate import SimulationConfig, simulate
from scorers.segments import load_segments
from streams.models.population import refresh_rfm_boundaries
from streams.models.registry import fit_and_publish
from tests.integration.harness import WorkerProcess, http_get, read_topic, wait_caught_up

pytestmark = pytest.mark.integration


async def _wait_for_models(
    worker: WorkerProcess, version: int, boundaries: int, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = await asyncio.to_thread(
            http_get, f"http://127.0.0.1:{worker.web_port}/health"
        )
        health = orjson.loads(body) if status == 200 else {}
        if (
            health.get("probability_model_version") == version
            and health.get("rfm_boundaries_version") == boundaries
        ):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the worker did not load model {version}:\n{worker.log_tail()}")


async def test_worker_hot_swaps_to_published_models(
    isolated_settings: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    settings = isolated_settings
    now = datetime.now(UTC)
    history = list(simulate(SimulationConfig.ending_at(now - timedelta(days=10), days=200,
                                                       customers=300, seed=11)))  # fmt: skip
    recent = list(simulate(SimulationConfig.ending_at(now, days=10, customers=300, seed=12)))
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    await worker.start()
    try:
        await produce_messages(settings, history)
        await wait_caught_up(settings, [worker])
        model = await fit_and_publish(settings, redis_client)
        boundaries = await refresh_rfm_boundaries(settings, redis_client)
        await _wait_for_models(worker, int(model.version), boundaries.version)
        await produce_messages(settings, recent)
        await wait_caught_up(settings, [worker])
    finally:
        await worker.stop()

    snapshots = [orjson.loads(v) for v in await read_topic(settings, "scores", len(history))]
    recent_ids = {orjson.loads(m.value)["event_id"] for m in recent}
    before = [s for s in snapshots if s["trigger"] == "event" and s["event_id"] not in recent_ids]
    after = [s for s in snapshots if s["event_id"] in recent_ids and s["frequency"] > 0]
    assert before and all(s["p_alive"] is None and s["segment"] is None for s in before)
    assert after, "no snapshots of ordering customers after the model was published"
    assert all(s["probability_model_version"] == model.version for s in after)
    assert all(0.0 <= s["p_alive"] <= 1.0 for s in after)
    assert all(s["expected_purchases_90d"] >= s["expected_purchases_30d"] >= 0 for s in after)
    assert all(s["clv"] is not None and s["clv"] >= 0 for s in after)
    grid = load_segments()
    for s in after:
        assert {s["r_score"], s["f_score"], s["m_score"]} <= {1, 2, 3, 4, 5}
        assert s["segment"] == grid.segment_for(s["r_score"], s["f_score"], s["m_score"])
    assert len({s["segment"] for s in after}) >= 3  # the population spreads over the grid
