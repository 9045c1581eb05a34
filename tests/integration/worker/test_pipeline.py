"""The worker through real Kafka and Redis: final state equals a batch recomputation."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pytest

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.simulate import SimulatedMessage, SimulationConfig, simulate
from tests.integration.harness import (
    WorkerProcess,
    read_profiles,
    read_topic,
    valid_events,
    wait_caught_up,
)
from tests.oracle import recompute_profiles

pytestmark = pytest.mark.integration


def _history(seed: int, customers: int = 150) -> list[SimulatedMessage]:
    config = SimulationConfig(
        customers=customers, days=120, seed=seed, malformed_fraction=0.02, duplicate_fraction=0.03
    )
    return list(simulate(config))


async def _assert_state_matches(settings: Settings, messages: list[SimulatedMessage]) -> None:
    expected = recompute_profiles(valid_events((m.kind, m.key, m.value) for m in messages))
    actual = await read_profiles(settings, expected)
    mismatched = [cid for cid in expected if actual.get(cid) != expected[cid]]
    assert not mismatched, (
        f"{len(mismatched)} of {len(expected)} profiles differ, e.g. {mismatched[0]}: "
        f"{actual.get(mismatched[0])} != {expected[mismatched[0]]}"
    )


async def test_normal_run_state_equals_recomputation(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    messages = _history(seed=1)
    worker = WorkerProcess(isolated_settings, str(tmp_path / "worker.log"))
    await worker.start()
    try:
        await produce_messages(isolated_settings, messages)
        await wait_caught_up(isolated_settings, [worker])
    finally:
        await worker.stop()
    await _assert_state_matches(isolated_settings, messages)
    malformed = sum(1 for m in messages if m.fault not in (None, "duplicate"))
    letters = await read_topic(isolated_settings, "deadletter", malformed)
    assert len(letters) == malformed, worker.log_tail()


async def test_sigkill_mid_stream_and_restart(state_settings: Settings, tmp_path: Path) -> None:
    """On one Redis and on a Redis Cluster (``state_settings``)."""
    messages = _history(seed=2, customers=300)
    worker = WorkerProcess(state_settings, str(tmp_path / "worker.log"))
    # ~4.5k messages over ~18 s, killed three times while they are still arriving
    producing = asyncio.create_task(produce_messages(state_settings, messages, rate=250))
    rnd = random.Random(7)
    kills_mid_stream = 0
    try:
        for _ in range(3):
            await worker.start()
            await asyncio.sleep(rnd.uniform(3.5, 5.5))
            kills_mid_stream += not producing.done()
            await worker.kill()
        await producing
        await worker.start()
        await wait_caught_up(state_settings, [worker])
    finally:
        await worker.stop()
    assert kills_mid_stream == 3
    await _assert_state_matches(state_settings, messages)


async def test_same_file_produced_twice_counts_once(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    messages = _history(seed=3)
    worker = WorkerProcess(isolated_settings, str(tmp_path / "worker.log"))
    await worker.start()
    try:
        await produce_messages(isolated_settings, messages)
        await produce_messages(isolated_settings, messages)
        await wait_caught_up(isolated_settings, [worker])
    finally:
        await worker.stop()
    await _assert_state_matches(isolated_settings, messages)


def test_history_has_faults_to_survive() -> None:
    messages = _history(seed=1)
    faults = {m.fault for m in messages}
    assert "duplicate" in faults and len(faults - {None, "duplicate"}) >= 5
    assert all(orjson.loads(m.value) for m in messages if m.fault is None)
