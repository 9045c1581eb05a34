"""`crm-score score`: every customer scored as of one moment, from what was known before it."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import crm_score.evaluate_truth as evaluate_truth_module
from crm_core.errors import ModelError
from crm_core.settings import Settings
from crm_score.cli import app
from crm_score.evaluate_replay import read_events
from crm_score.evaluate_truth import SCORERS, evaluate_truth, truth_quality
from crm_score.event_files import write_jsonl
from crm_score.score_file import ScoredFile, score_file, score_parsed
from crm_score.simulate import SimulationConfig, simulate, write_ground_truth

START = datetime(2023, 1, 1, tzinfo=UTC)
AS_OF = START + timedelta(days=300, hours=5, seconds=7)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
SETTINGS = Settings(_env_file=None)


def _simulated_shop(tmp_path_factory: pytest.TempPathFactory, seed: int) -> Path:
    path = tmp_path_factory.mktemp("score") / "history.jsonl"
    simulation = simulate(SimulationConfig(customers=200, days=420, seed=seed, start=START))
    write_jsonl(simulation, path)
    write_ground_truth(simulation.truth, path.with_suffix(".truth"))
    return path


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shop whose BG/NBD fit as of AS_OF is accepted (seed 8's runs off to a bound and is
    rejected since fits at a bound are refused)."""
    return _simulated_shop(tmp_path_factory, seed=1)


@pytest.fixture(scope="module")
def truth_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop the scorers are judged on against what happened."""
    return _simulated_shop(tmp_path_factory, seed=8)


@pytest.fixture(scope="module")
def scored(history: Path) -> ScoredFile:
    return score_file(history, SETTINGS, AS_OF, now=NOW)


def test_one_line_per_customer_seen_before_as_of(history: Path, scored: ScoredFile) -> None:
    before = set()
    for line in history.read_bytes().splitlines():
        event = orjson.loads(line)
        if datetime.fromisoformat(event["event_time"]) < AS_OF:
            before.add(event["customer_id"])
    ids = [line["customer_id"] for line in scored.lines]
    assert ids == sorted(before)
    stamp = AS_OF.isoformat().replace("+00:00", "Z")
    assert {line["as_of"] for line in scored.lines} == {stamp}
    buyers = [line for line in scored.lines if line["frequency"] > 0]
    assert buyers and all(
        line[name] is not None
        for line in buyers
        for name in ("churn_probability", "p_alive", "expected_purchases_90d", "clv", "segment")
    )
    assert {line["churn_model_version"] for line in buyers} == {"replay"}
    groups = {line["value_group"] for line in buyers}
    assert groups <= {"high_value_stable", "high_value_at_risk", "low_value_stable",
                      "low_value_at_risk", "no_value"} and len(groups) > 2  # fmt: skip


def test_the_learner_saw_only_labels_resolved_before_as_of(scored: ScoredFile) -> None:
    examples = scored.replayed.examples
    assert scored.learner.n_examples == len(examples) > SETTINGS.churn_min_examples
    assert all(e.resolved_at < AS_OF for e in examples)


def test_events_after_as_of_change_nothing(
    history: Path, scored: ScoredFile, tmp_path: Path
) -> None:
    lines = history.read_bytes().splitlines()
    early = [
        line for line in lines if datetime.fromisoformat(orjson.loads(line)["event_time"]) < AS_OF
    ]
    assert len(early) < len(lines)
    cut = tmp_path / "until-as-of.jsonl"
    cut.write_bytes(b"\n".join(early) + b"\n")
    again = score_file(cut, SETTINGS, AS_OF, now=NOW)
    assert again.lines == scored.lines


def test_skipping_the_settling_replay_gives_the_same_scores(
    history: Path, scored: ScoredFile
) -> None:
    quick = score_parsed(read_events(history, SETTINGS, now=NOW), SETTINGS, AS_OF, settle=False)
    assert quick.lines == scored.lines


def test_as_of_before_the_first_event_is_refused(history: Path) -> None:
    with pytest.raises(ModelError, match="score later"):
        score_file(history, SETTINGS, START - timedelta(days=1), now=NOW)


def test_the_command_writes_the_lines(history: Path, scored: ScoredFile, tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(
        app,
        ["score", "--events", str(history), "--as-of", "2023-10-28T05:00:07", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert [orjson.loads(line) for line in out.read_bytes().splitlines()] == scored.lines
    bad = CliRunner().invoke(app, ["score", "--events", str(history), "--as-of", "soon"])
    assert bad.exit_code != 0 and "--as-of" in bad.output


def test_judged_against_the_truth_at_three_cutoffs(truth_history: Path) -> None:
    history = truth_history
    truth = history.with_suffix(".truth")
    results = evaluate_truth(history, SETTINGS, truth_path=truth, now=NOW)
    assert len(results) == 3 and results[0].at < results[1].at < results[2].at
    for result in results:
        assert set(result.quality) == {"no_purchase", "dropped_out"}
        assert 0 < result.positive_rate["dropped_out"] < result.positive_rate["no_purchase"] < 1
        for scorers in result.quality.values():
            assert list(scorers) == list(SCORERS)
            for quality in scorers.values():
                assert quality.auc is not None and 0 <= quality.auc <= 1
                assert sum(r.n for r in quality.reliability) == result.customers
            assert min(scorers["online"].auc or 0, scorers["recency"].auc or 0) > 0.6
    payload = orjson.loads(orjson.dumps([r.to_dict() for r in results]))
    assert payload[0]["labels"]["no_purchase"]["online"]["reliability"][0]["bin"] == "0.0-0.1"
    with pytest.raises(ModelError, match="horizon before the last"):
        evaluate_truth(history, SETTINGS, cutoffs=[START + timedelta(days=400)], now=NOW)


def test_reliability_bins_hold_their_predictions() -> None:
    quality = truth_quality([0, 1, 1, 0, 1], [0.0, 0.05, 0.55, 0.95, 1.0])
    bins = [(r.n, r.mean_predicted, r.observed) for r in quality.reliability if r.n]
    assert bins == [(2, 0.025, 0.5), (1, 0.55, 1.0), (2, 0.975, 0.5)]
    assert quality.brier == pytest.approx((0 + 0.95**2 + 0.45**2 + 0.95**2 + 0) / 5)


def test_docstring_examples() -> None:
    failures, _ = doctest.testmod(evaluate_truth_module)
    assert failures == 0
