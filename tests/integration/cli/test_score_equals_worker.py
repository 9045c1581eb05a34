"""`crm-score score` equals what a worker stores.

A worker runs on the shared Kafka and Redis (own topics and key prefix, replay clock ending at
``as_of``) over the events before ``as_of``, with the probability model, RFM boundaries and
churn model that ``score`` fitted and learned published from the start (the learner is off, so
no other version appears mid-run). The worker's stored profiles, alert states and latest
snapshots must equal the replay's, and scoring the worker's stored customers at ``as_of`` must
give exactly the lines ``score`` wrote.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from crm_core.settings import Settings
from crm_score.evaluate_replay import read_events, replay_events
from crm_score.event_files import write_jsonl
from crm_score.produce import produce_messages
from crm_score.score_file import ScoredFile, score_customers, score_parsed
from crm_score.simulate import SimulationConfig, simulate
from scorers.churn_scoring import ChurnModelRef
from scorers.customer_state import CustomerState
from streams.models.population import RFM_BOUNDARIES
from streams.models.registry import CHURN_MODEL, PROBABILITY_MODEL, ModelRegistry
from streams.state.keys import Layout
from streams.state.profiles import connect_redis
from streams.state.records import ProfileRecords
from streams.state.snapshots import unpack as unpack_snapshot
from tests.integration.harness import WorkerProcess, read_profiles, wait_caught_up

pytestmark = pytest.mark.integration

START = datetime(2025, 1, 1, tzinfo=UTC)
AS_OF = START + timedelta(days=250, hours=7, seconds=3)


async def _publish(settings: Settings, scored: ScoredFile) -> tuple[str, str]:
    """Publish the models ``score`` used; their registry versions (probability, churn)."""
    client = connect_redis(settings)
    try:
        registry = ModelRegistry(client, settings.redis_key_prefix)
        model_version = await registry.reserve_version(PROBABILITY_MODEL)
        model = replace(scored.model, version=str(model_version))
        await registry.publish(PROBABILITY_MODEL, model.to_json(), {}, version=model_version)
        version = await registry.reserve_version(RFM_BOUNDARIES)
        bounds = scored.boundaries.model_copy(update={"version": version})
        await registry.publish(
            RFM_BOUNDARIES, bounds.model_dump_json().encode(), {}, version=version
        )
        churn_version = await registry.publish(CHURN_MODEL, scored.churn.scorer.to_bytes(), {})
    finally:
        await client.aclose()
    return str(model_version), str(churn_version)


async def _stored(
    settings: Settings, customers: list[str]
) -> tuple[dict[str, Any], dict[str, CustomerState], dict[str, dict[str, Any]]]:
    profiles = await read_profiles(settings, customers)
    layout = Layout(settings.redis_key_prefix)
    client = connect_redis(settings)
    try:
        states, snapshots = {}, {}
        for customer in profiles:
            raw = await ProfileRecords(client).get(layout.profile(customer), "as")
            states[customer] = CustomerState.from_bytes(raw)
            snapshot = await client.get(layout.snapshot(customer))
            if snapshot is not None:
                snapshots[customer] = unpack_snapshot(
                    snapshot.encode() if isinstance(snapshot, str) else snapshot
                )
    finally:
        await client.aclose()
    return profiles, states, snapshots


def _fix(value: Any) -> Any:
    """Floats to 9 significant digits, inside lists too: vectorised maths may differ in the
    last ulp with the size of the batch a value was computed in."""
    if isinstance(value, float):
        return float(f"{value:.9g}") if math.isfinite(value) else value
    if isinstance(value, list):
        return [_fix(v) for v in value]
    return value


def _canonical(message: dict[str, Any], versions: tuple[str, str]) -> str:
    """:func:`_fix` on every field, and the replay's model versions named as the registry
    numbered them."""
    out = {name: _fix(value) for name, value in message.items()}
    if out.get("probability_model_version") == "replay":
        out["probability_model_version"] = versions[0]
    if out.get("churn_model_version") == "replay":
        out["churn_model_version"] = versions[1]
    return orjson.dumps(out, option=orjson.OPT_SORT_KEYS).decode()


async def test_score_equals_what_the_worker_stores(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings.model_copy(
        update={
            "clock_mode": "replay",
            "replay_until": AS_OF,
            "allowed_lateness_seconds": 2 * 86_400.0,
            "learner_enabled": False,
            "cross_sell_enabled": False,
        }
    )
    simulation = simulate(SimulationConfig(customers=150, days=320, seed=21, start=START))
    history = sorted(simulation, key=lambda m: m.event_time)
    path = tmp_path / "history.jsonl"
    write_jsonl(history, path)
    parsed = read_events(path, settings, now=datetime.now(UTC))
    scored = score_parsed(parsed, settings, AS_OF)
    assert scored.churn.scorer.n_examples >= settings.churn_min_examples  # a learned model
    versions = await _publish(settings, scored)

    before = [m for m in history if m.event_time < AS_OF]
    await produce_messages(settings, before)
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    await worker.start()
    try:
        await wait_caught_up(settings, [worker])
    finally:
        await worker.stop()

    customers = sorted(scored.replayed.profiles)
    profiles, states, snapshots = await _stored(settings, customers)
    assert profiles == scored.replayed.profiles
    differ = {
        (c, name): (stored, replayed)
        for c, state in scored.replayed.states.items()
        for name, stored, replayed in zip(
            CustomerState._fields,
            _fix(orjson.loads(states.get(c, CustomerState()).to_bytes())),
            _fix(orjson.loads(state.to_bytes())),
            strict=True,
        )
        if stored != replayed
    }
    assert not differ, differ
    replayed = replay_events(
        parsed,
        settings,
        scored.model,
        scored.boundaries,
        until=math.ceil(AS_OF.timestamp()) - 1,
        churn_model=scored.churn,
        outputs=True,
    )
    latest = {}
    for raw in replayed.snapshots:
        snapshot = orjson.loads(raw)
        latest[snapshot["customer_id"]] = snapshot
    assert {c: _canonical(s, versions) for c, s in snapshots.items()} == {
        c: _canonical(s, versions) for c, s in latest.items()
    }

    model = replace(scored.model, version=versions[0])
    churn = ChurnModelRef(versions[1], scored.churn.scorer)
    stored = {c: (profiles[c], states[c]) for c in customers}
    moment = math.ceil(AS_OF.timestamp())
    from_worker = score_customers(settings, model, scored.boundaries, churn, stored, moment)
    assert [_canonical(line, versions) for line in from_worker] == [
        _canonical(line, versions) for line in scored.lines
    ]
