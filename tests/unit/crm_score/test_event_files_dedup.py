"""Offline deduplication (event files for `crm-score fit --events` and `crm-score evaluate`) is
the worker's rule: an event id counts once per customer, not once across all customers.
(tests/integration/state/test_profiles.py checks the rule against the Redis script itself.)"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from crm_core.settings import Settings
from crm_score.evaluate_replay import read_events
from crm_score.event_files import profiles_from_file
from schemas import example_event_dict


def _file(tmp_path: Path) -> Path:
    lines = []
    for customer, event_id, day in [
        ("c1", "order-1", 1),
        ("c2", "order-1", 2),  # another customer's order with the same id: counts
        ("c1", "order-1", 3),  # c1 sent it again: does not
        ("c1", "order-2", 4),
    ]:
        raw = example_event_dict("order_placed")
        raw.update(
            customer_id=customer, event_id=event_id, event_time=f"2025-03-0{day}T10:00:00+00:00"
        )
        lines.append(orjson.dumps(raw))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_fit_events_counts_an_id_once_per_customer(tmp_path: Path) -> None:
    profiles, _, rejected = profiles_from_file(_file(tmp_path), {"USD": 1.0}, now=datetime.now(UTC))
    assert {c: p.orders for c, p in profiles.items()} == {"c1": 2, "c2": 1}
    assert rejected == 1


def test_evaluate_replay_counts_an_id_once_per_customer(tmp_path: Path) -> None:
    parsed = read_events(_file(tmp_path), Settings(), now=datetime.now(UTC))
    kept = [(item.event.customer_id, item.event.event_id) for item in parsed.items]
    assert kept == [("c1", "order-1"), ("c2", "order-1"), ("c1", "order-2")]
    assert parsed.duplicates == 1
