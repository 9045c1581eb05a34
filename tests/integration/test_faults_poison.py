"""Poison flood: 10,000+ malformed messages mixed into the valid traffic of the standard
history. Every one is dead-lettered with its reason, the valid events' results (profiles, alert
states, due-index, alerts) equal the clean run's, and throughput does not collapse (measured
and printed next to the clean run's; not asserted, timing on a shared 2-core machine varies).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.simulate import MALFORMATION_REASONS, SimulatedMessage, SimulationConfig, simulate
from schemas import DeadLetter
from tests.integration.faults import (
    REFERENCE_SECONDS,
    assert_matches_clean,
    fault_settings,
    publish_models,
    read_all,
    read_outcome,
    standard_history,
    standard_reference,
)
from tests.integration.harness import WorkerProcess, wait_caught_up

pytestmark = pytest.mark.integration

POISON = 12_000


def _poison(start_like: list[SimulatedMessage]) -> list[SimulatedMessage]:
    """Malformed messages of every kind the simulator makes, over the same year, for customers
    of their own (rejected messages touch no state, whatever their key)."""
    config = SimulationConfig(
        customers=3000,
        days=365,
        seed=7,
        start=min(m.event_time for m in start_like),
        malformed_fraction=0.3,
        id_prefix="poison-",
    )
    bad = [m for m in simulate(config) if m.fault in MALFORMATION_REASONS]
    assert len(bad) >= POISON, len(bad)
    return bad[:POISON]


async def test_poison_flood_is_dead_lettered_and_changes_nothing(
    base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    history = standard_history()
    reference = await standard_reference(base_settings, tmp_path / "clean.log")
    poison = _poison(history.messages)
    mixed = sorted(history.messages + poison, key=lambda m: m.event_time)
    settings = fault_settings(base_settings, history)
    await publish_models(settings, history)
    await produce_messages(settings, mixed)
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    try:
        await worker.start()
        await worker.wait_ready()
        started = time.monotonic()
        await wait_caught_up(settings, [worker], timeout=240)
        seconds = time.monotonic() - started
    finally:
        await worker.stop()

    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    malformed = [m for m in mixed if m.fault in MALFORMATION_REASONS]
    letters = [DeadLetter.from_json_bytes(v) for v in await read_all(settings, "deadletter")]
    got = Counter(letter.reason.value for letter in letters)
    want = Counter(MALFORMATION_REASONS[str(m.fault)] for m in malformed)
    assert got == want, f"dead letters by reason {dict(got)} != {dict(want)}"
    assert all(letter.message for letter in letters), "a dead letter without a message"

    clean = REFERENCE_SECONDS.get("standard")
    rate = len(mixed) / seconds
    print(
        f"\npoison flood: {len(poison):,} poison + {len(history.messages):,} history messages "
        f"in {seconds:.1f} s = {rate:,.0f} msg/s; dead letters {dict(got)}"
    )
    if clean:
        print(
            f"clean run: {len(history.messages):,} messages in {clean:.1f} s = "
            f"{len(history.messages) / clean:,.0f} msg/s (valid events/s with the flood: "
            f"{len(history.messages) / seconds:,.0f})"
        )
