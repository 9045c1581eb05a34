"""`crm-score evaluate`: the in-process replay's labels against a brute-force oracle, and the
comparison of the online learner with the batch baseline."""

from __future__ import annotations

import bisect
import doctest
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import orjson
import pytest
from sklearn.metrics import roc_auc_score

import crm_score.evaluate as evaluate_module
from crm_core.settings import Settings
from crm_score import evaluate_replay
from crm_score.evaluate import EvaluationReport, evaluate_history, quality, split
from crm_score.evaluate_replay import replay_history, rfm_boundaries
from crm_score.event_files import write_jsonl
from crm_score.simulate import SimulationConfig, simulate
from schemas import TrainingExample
from scorers.profile import Profile, apply_delta
from scorers.quintiles import QuintileSketch
from scorers.rfm import rfm

START = datetime(2023, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, tzinfo=UTC)  # after the simulated window: no event is "in the future"
DAY = 86_400


def _settings() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~300 customers over two years, seeded."""
    path = tmp_path_factory.mktemp("evaluate") / "history.jsonl"
    write_jsonl(simulate(SimulationConfig(customers=300, days=730, seed=5, start=START)), path)
    return path


@pytest.fixture(scope="module")
def report(history: Path) -> EvaluationReport:
    return evaluate_history(history, _settings(), now=NOW)


def _purchase_times(path: Path) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Each customer's order and return times (whole seconds, sorted), from the raw file."""
    orders: dict[str, list[int]] = {}
    returns: dict[str, list[int]] = {}
    for line in path.read_bytes().splitlines():
        event = orjson.loads(line)
        at = int(datetime.fromisoformat(event["event_time"]).timestamp())
        if event["type"] in ("order_placed", "order_returned"):
            kind = orders if event["type"] == "order_placed" else returns
            kind.setdefault(event["customer_id"], []).append(at)
    for by_customer in (orders, returns):
        for times in by_customer.values():
            times.sort()
    return orders, returns


def _any_in(times: list[int], low: int, high: int) -> bool:
    """Whether some time lies in ``(low, high]``."""
    i = bisect.bisect_right(times, low)
    return i < len(times) and times[i] <= high


def _oracle_label(orders: list[int], snapshot: int, horizon: int) -> int:
    return 0 if _any_in(orders, snapshot, snapshot + horizon) else 1


def _rows(examples: list[TrainingExample]) -> list[tuple[str, int, int]]:
    return [(e.idempotency_key, e.label, int(e.resolved_at.timestamp())) for e in examples]


def test_examples_exist_with_both_labels(report: EvaluationReport) -> None:
    labels = [e.label for e in report.examples]
    assert len(labels) > 1000
    assert 0.2 < sum(labels) / len(labels) < 0.8
    assert len({e.idempotency_key for e in report.examples}) == len(labels)
    assert report.split.purged > 0 and len(report.split.train) > len(report.split.test) > 0


def test_every_label_resolves_inside_the_history(report: EvaluationReport) -> None:
    last = report.history.parsed.last_at
    assert all(int(e.resolved_at.timestamp()) <= last for e in report.examples)
    assert report.history.censored > 0  # the tail's snapshots stay unlabelled


def test_emission_order_is_label_resolution_order_across_rounds(
    report: EvaluationReport,
) -> None:
    # Rounds are days of event time; within one the examples come customer by customer.
    days = [int(e.resolved_at.timestamp()) // DAY for e in report.examples]
    assert days == sorted(days)


def test_every_label_agrees_with_the_order_times_in_the_file(
    history: Path, report: EvaluationReport
) -> None:
    """Label 1 iff the customer placed no order in (snapshot, snapshot + horizon]; a return is
    no purchase. A 1 is known the second after the horizon, a 0 at the order that decides it."""
    orders, returns = _purchase_times(history)
    horizon = round(report.examples[0].horizon_days * DAY)
    wrong, around_returns = [], 0
    for e in report.examples:
        mine, snapshot = orders.get(e.customer_id, []), int(e.snapshot_at.timestamp())
        resolved = int(e.resolved_at.timestamp())
        expected = _oracle_label(mine, snapshot, horizon)
        decided_at = (
            snapshot + horizon + 1 if expected else mine[bisect.bisect_right(mine, snapshot)]
        )
        if (e.label, resolved) != (expected, decided_at):
            wrong.append(e.idempotency_key)
        around_returns += _any_in(returns.get(e.customer_id, []), snapshot, snapshot + horizon)
    assert wrong == []
    assert around_returns > 20  # the history does test that returns are not purchases


def test_online_auc_is_sklearn_auc_of_the_returned_predictions(report: EvaluationReport) -> None:
    labels, online = report.test_labels, report.online_test_predictions
    assert report.online.auc == pytest.approx(roc_auc_score(labels, online), abs=1e-12)
    assert report.batch.auc == pytest.approx(
        roc_auc_score(labels, report.batch_predictions), abs=1e-12
    )
    assert report.online_prequential["n"] == len(report.examples)
    every = quality([e.label for e in report.examples], report.online_predictions)
    assert report.online_prequential["auc"] == pytest.approx(every.auc, abs=1e-12)
    assert report.online.auc is not None and report.online.auc > 0.6


def test_split_keeps_complete_horizons_and_purges_labels_unknown_at_the_split(
    report: EvaluationReport,
) -> None:
    examples, sets, end = report.examples, report.split, report.history.until
    horizon = timedelta(days=examples[0].horizon_days, seconds=1)
    evaluated = [*sets.train, *sets.test]
    assert all(examples[i].snapshot_at + horizon <= end for i in evaluated)
    assert sets.incomplete == sum(e.snapshot_at + horizon > end for e in examples) > 0
    first_test = min(examples[i].snapshot_at for i in sets.test)
    assert sets.test_from == first_test
    assert all(examples[i].snapshot_at + horizon <= first_test for i in sets.train)
    complete = len(examples) - sets.incomplete
    assert len(sets.train) + sets.purged + len(sets.test) == complete
    assert len(sets.test) == complete - int(0.7 * complete)
    assert split(examples, end) == sets


def test_purging_by_resolution_keeps_only_extra_negatives(report: EvaluationReport) -> None:
    examples, end = report.examples, report.history.until
    by_horizon = split(examples, end)
    by_resolution = split(examples, end, purge="resolved")
    assert by_resolution.test == by_horizon.test
    extra = set(by_resolution.train) - set(by_horizon.train)
    assert set(by_horizon.train) <= set(by_resolution.train) and extra
    assert all(examples[i].label == 0 for i in extra)  # a purchase resolved them early
    assert all(examples[i].resolved_at <= by_resolution.test_from for i in by_resolution.train)


def test_the_report_is_json(report: EvaluationReport) -> None:
    payload = orjson.loads(orjson.dumps(report.to_dict()))
    assert payload["examples"] == len(report.examples)
    assert payload["test"] == len(report.split.test)
    assert set(payload["seconds"]) == {"read", "fit", "replay", "online", "batch", "total"}


def test_the_report_gives_microseconds_per_event_and_wall_time(report: EvaluationReport) -> None:
    payload = orjson.loads(orjson.dumps(report.to_dict()))
    seconds, per_event = payload["seconds"], payload["microseconds_per_event"]
    assert set(per_event) == {"parse", "round"}
    parsed = report.history.parsed
    lines = len(parsed.items) + parsed.rejected + parsed.duplicates
    # The same measurement in other units (to the rounding of both), not a speed.
    assert per_event["parse"] == pytest.approx(
        seconds["read"] / lines * 1e6, abs=1e-3 / lines * 1e6
    )
    assert per_event["round"] == pytest.approx(
        seconds["replay"] / len(parsed.items) * 1e6, abs=1e-3 / len(parsed.items) * 1e6
    )
    stages = sum(v for k, v in seconds.items() if k != "total")
    assert payload["wall_seconds"] == seconds["total"] >= stages - 0.005


def test_the_replay_is_deterministic(history: Path, report: EvaluationReport) -> None:
    again = replay_history(history, _settings(), now=NOW)
    assert _rows(again.examples) == _rows(report.examples)
    assert [e.features for e in again.examples] == [e.features for e in report.examples]
    assert again.boundaries == report.history.boundaries


def test_file_order_does_not_matter(
    history: Path, report: EvaluationReport, tmp_path: Path
) -> None:
    lines = history.read_bytes().splitlines()
    random.Random(3).shuffle(lines)
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_bytes(b"\n".join(lines) + b"\n")
    again = replay_history(shuffled, _settings(), now=NOW)
    assert _rows(again.examples) == _rows(report.examples)
    assert [e.features for e in again.examples] == [e.features for e in report.examples]


def test_lines_of_unknown_type_are_rejected_as_the_worker_dead_letters_them(
    history: Path, report: EvaluationReport, tmp_path: Path
) -> None:
    lines = history.read_bytes().splitlines()
    odd = [b'{"type": "refund_issued", "customer_id": "c1"}', b"not json at all"]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join(lines[:10] + odd + lines[10:]) + b"\n")
    again = replay_history(mixed, _settings(), now=NOW)
    assert again.parsed.rejected == report.history.parsed.rejected + len(odd)
    assert _rows(again.examples) == _rows(report.examples)


def test_exact_boundaries_equal_the_sketch_in_exact_mode(report: EvaluationReport) -> None:
    parsed = report.history.parsed
    profiles: dict[str, Profile] = {}
    for item in parsed.items[:3000]:  # fewer customers than the sketch's k = 200
        customer = item.event.customer_id
        profiles[customer] = apply_delta(profiles.get(customer, Profile()), item.delta)
    as_of = parsed.items[3000].event.event_time
    sketch = QuintileSketch()
    for profile in profiles.values():
        sketch.update(rfm(profile, as_of))
    assert 20 < sketch.n <= 200
    assert rfm_boundaries(profiles.values(), as_of) == sketch.boundaries(1, as_of)


def test_quality_of_a_perfect_ranking() -> None:
    scored = quality([0, 0, 0, 1] * 5, [0.1, 0.2, 0.3, 0.9] * 5)
    assert scored.auc == 1.0 and scored.top_decile_recall == pytest.approx(2 / 5)
    assert scored.log_loss is not None and scored.log_loss > 0


@pytest.mark.parametrize("module", [evaluate_module, evaluate_replay], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    failures, _ = doctest.testmod(module)
    assert failures == 0
