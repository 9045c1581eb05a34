"""Replay = live: one history run in one go, in chunks with worker restarts between them, and
shuffled within the allowed lateness gives the same alerts and the same final scores.

Each run gets its own topics and Redis prefix, with the same published probability model and
RFM boundaries (fitted once from a batch recomputation of the history), and runs in replay mode:
the watermark comes from event times only and reaches ``replay_until`` once the input is read.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.simulate import SimulatedMessage, SimulationConfig, simulate
from scorers.probability import ProbabilityModel, fit_from_profiles
from scorers.probability_batch import high_value_cut
from scorers.quintiles import QuintileSketch, RfmBoundaries
from scorers.rfm import rfm
from scorers.timeline import CustomerState
from streams.models.population import RFM_BOUNDARIES
from streams.models.registry import PROBABILITY_MODEL, ModelRegistry
from streams.state.profiles import connect_redis
from streams.state.records import ProfileRecords
from tests.integration.harness import (
    WorkerProcess,
    read_profiles,
    valid_events,
    wait_caught_up,
)
from tests.oracle import recompute_profiles

pytestmark = pytest.mark.integration

LATENESS = timedelta(days=2)


def _history() -> list[SimulatedMessage]:
    config = SimulationConfig(
        customers=250,
        days=365,
        seed=42,
        start=datetime(2025, 1, 1, tzinfo=UTC),
        malformed_fraction=0.005,
        duplicate_fraction=0.01,
    )
    return sorted(simulate(config), key=lambda m: m.event_time)


def _shuffled_within_lateness(messages: list[SimulatedMessage]) -> list[SimulatedMessage]:
    """Each message moves later by up to the lateness: if j comes after i then
    t_j + u_j >= t_i + u_i, so t_j >= t_i - lateness (never late)."""
    rng = random.Random(7)
    span = LATENESS.total_seconds() * 0.9
    return sorted(messages, key=lambda m: m.event_time.timestamp() + rng.uniform(0, span))


def _scoring_config(
    messages: list[SimulatedMessage],
) -> tuple[ProbabilityModel, RfmBoundaries]:
    profiles = list(
        recompute_profiles(valid_events((m.kind, m.key, m.value) for m in messages)).values()
    )
    end = max(m.event_time for m in messages)
    model = fit_from_profiles(profiles, end)
    model = replace(model, high_value_clv=high_value_cut(model, profiles, 0.2))
    sketch = QuintileSketch()
    for profile in profiles:
        sketch.update(rfm(profile, end))
    return model, sketch.boundaries(1, end)


async def _publish(settings: Settings, model: ProbabilityModel, bounds: RfmBoundaries) -> None:
    client = connect_redis(settings)
    try:
        registry = ModelRegistry(client, settings.redis_key_prefix)
        version = await registry.reserve_version(PROBABILITY_MODEL)
        payload = replace(model, version=str(version)).to_json()
        await registry.publish(PROBABILITY_MODEL, payload, {}, version=version)
        version = await registry.reserve_version(RFM_BOUNDARIES)
        payload = bounds.model_copy(update={"version": version}).model_dump_json().encode()
        await registry.publish(RFM_BOUNDARIES, payload, {}, version=version)
    finally:
        await client.aclose()


def _settings(base: Settings, until: datetime | None) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return base.model_copy(
        update={
            "topic_prefix": f"t{tag}.",
            "redis_key_prefix": f"t{tag}",
            "app_id": f"crm-test-{tag}",
            "clock_mode": "replay",
            "allowed_lateness_seconds": LATENESS.total_seconds(),
            "replay_until": until,
        }
    )


async def _wait_read(worker: WorkerProcess, timeout: float = 120) -> None:
    """Until the worker has read all of its input and done a round since (two calm polls)."""
    deadline = time.monotonic() + timeout
    calm, last = 0, None
    while time.monotonic() < deadline:
        if worker.proc is not None and worker.proc.returncode is not None:
            raise AssertionError(f"the worker exited:\n{worker.log_tail()}")
        try:
            health = await asyncio.to_thread(worker.health)
        except OSError:
            health = {}
        seen = (health.get("consumed"), health.get("buffered"))
        calm = calm + 1 if health.get("caught_up") and seen == last else 0
        if calm >= 2:
            return
        last = seen
        await asyncio.sleep(0.5)
    raise AssertionError(f"worker did not read its input within {timeout} s")


async def _run(
    settings: Settings, chunks: list[list[SimulatedMessage]], tmp_path: Path, until: datetime
) -> dict[str, Any]:
    """Produce each chunk and run a fresh worker over it; the last run knows the history's end."""
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        run = settings.model_copy(update={"replay_until": until if last else None})
        await produce_messages(run, chunk)
        worker = WorkerProcess(run, str(tmp_path / f"{settings.app_id}-{i}.log"))
        await worker.start()
        try:
            if last:
                await wait_caught_up(run, [worker])
            else:
                await _wait_read(worker)
        finally:
            await worker.stop()
    return await _outcome(settings, [m for c in chunks for m in c])


async def _outcome(settings: Settings, messages: list[SimulatedMessage]) -> dict[str, Any]:
    customers = {m.key.decode() for m in messages if m.key}
    profiles = await read_profiles(settings, customers)
    client = connect_redis(settings)
    try:
        states = {}
        for cid in profiles:
            raw = await ProfileRecords(client).get(f"{settings.redis_key_prefix}:{{{cid}}}:p", "as")
            states[cid] = CustomerState.from_bytes(raw)
    finally:
        await client.aclose()
    alerts = [orjson.loads(v) for v in await _read_all(settings, "alerts")]
    scores = [orjson.loads(v) for v in await _read_all(settings, "scores")]
    return {
        "profiles": profiles,
        "states": states,
        "alerts": sorted((a["idempotency_key"], a["event_time"]) for a in alerts),
        "alert_bodies": sorted(_canonical(a) for a in alerts),
        "scores": sorted(_canonical(s) for s in scores),
    }


async def _read_all(settings: Settings, name: str) -> list[bytes]:
    """Every value in a topic, up to its end offsets when called."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic(name), p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[bytes] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=1000)
            values += [m.value for msgs in batch.values() for m in msgs if m.value is not None]
        return values
    finally:
        await consumer.stop()


def _canonical(message: dict[str, Any]) -> str:
    """JSON with floats to 9 significant digits (vectorised maths may differ in the last ulp
    with the size of the batch a value was computed in)."""

    def fix(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.9g}") if math.isfinite(value) else value
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return orjson.dumps(fix(message), option=orjson.OPT_SORT_KEYS).decode()


async def test_replay_in_one_go_in_chunks_and_shuffled_agree(
    base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replay = live holds for fixed model versions: a learner publishing churn versions
    # mid-run would make scores depend on when each worker swapped. Churn scores here come
    # from the deterministic cold-start fallback (1 - P(alive)), alerts included.
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    # Cross-sell suggestions are decided against population counts of the moment, which depend
    # on how partitions interleave (like model versions): not part of replay = live.
    monkeypatch.setenv("CRM_CROSS_SELL_ENABLED", "false")
    history = _history()
    until = max(m.event_time for m in history) + timedelta(seconds=1)
    model, bounds = _scoring_config(history)
    third = len(history) // 3

    outcomes = {}
    runs = {
        "one go": [history],
        "chunks with restarts": [history[:third], history[third : 2 * third], history[2 * third :]],
        "shuffled within lateness": [_shuffled_within_lateness(history)],
    }
    for name, chunks in runs.items():
        settings = _settings(base_settings, until)
        await _publish(settings, model, bounds)
        outcomes[name] = await _run(settings, chunks, tmp_path, until)

    reference = outcomes["one go"]
    kinds = {key.split(":")[0] for key, _ in reference["alerts"]}
    assert {"segment_changed", "high_value_at_risk", "win_back"} <= kinds, kinds
    assert len(reference["alerts"]) == len(set(reference["alerts"])), "an episode fired twice"
    expected = recompute_profiles(valid_events((m.kind, m.key, m.value) for m in history))
    assert reference["profiles"] == expected
    timer_scores = [s for s in reference["scores"] if '"trigger":"timer"' in s]
    assert timer_scores, "no customer was re-scored by a timer"
    for name, outcome in outcomes.items():
        for part in ("profiles", "states", "alerts", "alert_bodies", "scores"):
            assert outcome[part] == reference[part], f"{name}: {part} differ from one go"
