"""The CLI as a user runs it: simulate to a file, produce the file, look a customer up."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from crm_core.settings import Settings
from crm_score.event_files import profiles_from_file, read_event_file
from scorers.probability import fit_from_profiles
from tests.integration.harness import (
    WorkerProcess,
    read_profiles,
    run_cli,
    valid_events,
    wait_caught_up,
)
from tests.oracle import recompute_profiles

pytestmark = pytest.mark.integration


async def test_simulate_produce_and_profile(isolated_settings: Settings, tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    code, out = await run_cli(
        isolated_settings, "simulate", "--customers", "40", "--days", "25", "--seed", "4",
        "--out", str(events_file),
    )  # fmt: skip
    assert code == 0, out
    lines = events_file.read_bytes().splitlines()
    assert f"wrote {len(lines)} events" in out

    worker = WorkerProcess(isolated_settings, str(tmp_path / "worker.log"))
    await worker.start()
    try:
        code, out = await run_cli(isolated_settings, "produce", str(events_file))
        assert code == 0, out
        assert f"sent {len(lines)} messages" in out
        await wait_caught_up(isolated_settings, [worker])
    finally:
        await worker.stop()

    messages = list(read_event_file(events_file))
    expected = recompute_profiles(valid_events((m.kind, m.key, m.value) for m in messages))
    assert await read_profiles(isolated_settings, expected) == expected

    customer = sorted(expected)[0]
    code, out = await run_cli(isolated_settings, "profile", customer)
    assert code == 0, out
    report = orjson.loads(out)
    assert report["customer_id"] == customer
    assert report["rfm"]["frequency"] == expected[customer].orders
    assert report["profile"]["messages_sent"] == expected[customer].messages_sent

    code, out = await run_cli(isolated_settings, "profile", "nobody-here")
    assert code == 1
    assert "no profile" in out


async def test_fit_from_an_event_file_equals_a_fit_on_its_recomputed_profiles(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    # A fixed end: the fit merges same-day orders by calendar day, so a window ending "now"
    # gives another fit at another hour. 540 days let BG/NBD see dropout (on 200 days its a and
    # b run off to infinity at some hours, and the fit is rejected, as it should be).
    events_file, again = tmp_path / "history.jsonl", tmp_path / "again.jsonl"
    for path in (events_file, again):
        code, out = await run_cli(
            isolated_settings, "simulate", "--customers", "400", "--days", "540", "--seed", "9",
            "--end", "2026-06-01T09:00:00Z", "--out", str(path),
        )  # fmt: skip
        assert code == 0, out
    assert events_file.read_bytes() == again.read_bytes()  # same seed and end, same events
    code, out = await run_cli(isolated_settings, "fit", "--events", str(events_file))
    assert code == 0, out
    report = orjson.loads(out[out.index("{") :])

    messages = list(read_event_file(events_file))
    events = valid_events((m.kind, m.key, m.value) for m in messages)
    newest = max(e.event_time for e in events)
    expected = fit_from_profiles(recompute_profiles(events).values(), newest)
    assert report["version"] == 1 and report["fitted_at"] == newest.isoformat()
    for name, value in asdict(expected.bgnbd).items():
        assert report["bgnbd"][name] == pytest.approx(value, rel=1e-9), name
    assert report["n_customers"] == expected.n_customers
    assert report["high_value_clv"] is not None


async def test_fit_events_counts_what_the_worker_counts(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    """`crm-score fit --events` and the worker fold the same file into the same profiles: event
    ids repeat within a customer (re-sent, also under another kind) and across customers
    (another customer's event with the same id counts), so both deduplicate per customer."""
    simulated = tmp_path / "simulated.jsonl"
    code, out = await run_cli(
        isolated_settings, "simulate", "--customers", "60", "--days", "60", "--seed", "5",
        "--duplicates", "0.05", "--out", str(simulated),
    )  # fmt: skip
    assert code == 0, out
    lines = [orjson.loads(line) for line in simulated.read_bytes().splitlines()]
    customers = sorted({line["customer_id"] for line in lines})
    borrowed = []
    for i, line in enumerate(lines[:: len(lines) // 40]):  # the same ids, other customers
        borrowed.append({**line, "customer_id": customers[i % len(customers)]})
    # In time order, so a customer's events of one kind (one partition) arrive in the order
    # both judge them in (a late event is judged when it arrives: the order can differ then).
    history = sorted(lines + borrowed, key=lambda line: str(line["event_time"]))
    events_file = tmp_path / "history.jsonl"
    events_file.write_bytes(b"\n".join(orjson.dumps(line) for line in history) + b"\n")
    offline, _, skipped = profiles_from_file(
        events_file, isolated_settings.fx_rates, now=datetime.now(UTC),
        dedup_window_days=isolated_settings.dedup_window_days,
    )  # fmt: skip
    kept = len(history) - skipped
    pairs = {(line["customer_id"], line["event_id"]) for line in history}
    assert skipped > 0 and kept == len(pairs), "each customer's id counts once"
    assert kept > len({line["event_id"] for line in history}), "no id counted for two customers"
    worker = WorkerProcess(isolated_settings, str(tmp_path / "worker.log"))
    await worker.start()
    try:
        code, out = await run_cli(isolated_settings, "produce", str(events_file))
        assert code == 0, out
        await wait_caught_up(isolated_settings, [worker])
        applied = worker.health()["applied"]
    finally:
        await worker.stop()
    assert applied == kept, f"the worker applied {applied} events, fit --events {kept}"
    assert await read_profiles(isolated_settings, offline) == offline
