"""The churn loop end to end: a running worker labels snapshots, its learner learns them and
publishes a version, and the same worker, without a restart, scores with it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.simulate import SimulationConfig, simulate
from schemas import Alert, TrainingExample
from scorers.churn_model import ChurnScorer
from streams.models.registry import CHURN_MODEL, ModelRegistry
from tests.integration.harness import (
    WorkerProcess,
    read_topic,
    wait_caught_up,
    wait_for_churn_model,
)

pytestmark = pytest.mark.integration


async def test_worker_learns_publishes_and_hot_swaps_its_churn_model(
    isolated_settings: Settings,
    redis_client: aioredis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    churn = {
        "churn_horizon_days": 30.0,
        "churn_sample_days": 10.0,
        "churn_sample_max_silence_days": 60.0,
        "churn_min_examples": 100,
        "learner_publish_every": 100,
        "learner_publish_seconds": 1.0,
    }
    for name, value in churn.items():  # the worker subprocess reads its settings from env
        monkeypatch.setenv(f"CRM_{name.upper()}", str(value))
    settings = isolated_settings.model_copy(update=churn)
    now = datetime.now(UTC)
    history = list(simulate(SimulationConfig.ending_at(now - timedelta(days=15), days=240,
                                                       customers=300, seed=21)))  # fmt: skip
    recent = list(simulate(SimulationConfig.ending_at(now, days=15, customers=300, seed=22)))
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    await worker.start()
    try:
        await produce_messages(settings, history)
        await wait_caught_up(settings, [worker])
        version = await wait_for_churn_model(worker)
        await produce_messages(settings, recent)
        await wait_caught_up(settings, [worker])
        health = await asyncio.to_thread(worker.health)
    finally:
        await worker.stop()

    examples = [
        TrainingExample.from_json_bytes(v) for v in await read_topic(settings, "training", 100)
    ]
    assert len(examples) >= 100 and {e.label for e in examples} == {0, 1}
    assert all(e.horizon_days == 30.0 for e in examples)
    assert len({e.idempotency_key for e in examples}) == len(examples)
    learner = health["learner"]
    assert isinstance(learner, dict) and learner["leader"] is True

    # The registry keeps the 5 newest versions: the first one the worker loaded may be gone.
    published = await ModelRegistry(redis_client, settings.redis_key_prefix).current(CHURN_MODEL)
    assert published is not None and published.version >= version
    assert ChurnScorer.from_bytes(published.payload).n_examples >= 100

    snapshots = [orjson.loads(v) for v in await read_topic(settings, "scores", len(history))]
    recent_ids = {orjson.loads(m.value)["event_id"] for m in recent}
    first_history_ids = {orjson.loads(m.value)["event_id"] for m in history[:200]}
    early = [s for s in snapshots if s["event_id"] in first_history_ids]
    assert early and all(s["churn_probability"] is None for s in early)  # no model, no P(alive)
    scored = [s for s in snapshots if s["event_id"] in recent_ids and s["frequency"] > 0]
    assert scored, "no snapshots of ordering customers after the churn model was published"
    assert all(s["churn_model_version"] is not None for s in scored)
    assert all(int(s["churn_model_version"]) >= version for s in scored)
    assert all(0.0 <= s["churn_probability"] <= 1.0 for s in scored)
    assert len({round(s["churn_probability"], 3) for s in scored}) > 10  # a real model, not flat
    with_reasons = [s for s in scored if s["churn_probability"] >= settings.churn_alert_reset]
    assert all(1 <= len(s["reasons"]) <= 3 for s in with_reasons)

    alerts = [Alert.from_json_bytes(v) for v in await read_topic(settings, "alerts", 1, timeout=5)]
    for alert in (a for a in alerts if a.alert_type == "churn_risk"):
        assert alert.reasons
        probability = alert.scores["churn_probability"]
        assert isinstance(probability, float)
        assert probability >= settings.churn_alert_threshold
