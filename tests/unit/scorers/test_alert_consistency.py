"""Every alert agrees with the score snapshot it was made from, over a seeded replay.

A simulated shop is replayed through the worker's round scorer twice: with the cold-start churn
fallback, and with a churn model learned from the first replay's examples. Each alert's scores
must be the fields of a snapshot of the same customer at the same moment, and what its type
claims must hold in that snapshot (a ``high_value_at_risk`` alert on a customer whose snapshot
says ``low_value_at_risk`` was seen once).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from crm_core.settings import Settings
from crm_score.evaluate_replay import Replayed, fit_population_at, read_events, replay_events
from crm_score.event_files import write_jsonl
from crm_score.simulate import SimulationConfig, simulate
from scorers.churn_scoring import ChurnModelRef
from scorers.learner import OnlineLearner

START = datetime(2023, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
SETTINGS = Settings(_env_file=None)


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Replayed]:
    path: Path = tmp_path_factory.mktemp("alerts") / "history.jsonl"
    write_jsonl(simulate(SimulationConfig(customers=300, days=600, seed=11, start=START)), path)
    parsed = read_events(path, SETTINGS, now=NOW)
    fit_at = datetime.fromtimestamp(parsed.first_at + 0.3 * (parsed.last_at - parsed.first_at), UTC)
    model, boundaries = fit_population_at(parsed, fit_at, SETTINGS)
    until = parsed.last_at
    fallback = replay_events(parsed, SETTINGS, model, boundaries, until=until, outputs=True)
    learner = OnlineLearner()
    for example in fallback.examples:
        learner.learn_one(example.idempotency_key, example.features, example.label)
    churn = ChurnModelRef("1", learner.model.compile())
    learned = replay_events(
        parsed, SETTINGS, model, boundaries, until=until, churn_model=churn, outputs=True
    )
    return {"fallback": fallback, "learned": learned}


def _snapshots_by_moment(replayed: Replayed) -> dict[tuple[str, str], list[dict[str, Any]]]:
    by_moment: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for raw in replayed.snapshots:
        snapshot = orjson.loads(raw)
        by_moment.setdefault((snapshot["customer_id"], snapshot["as_of"]), []).append(snapshot)
    return by_moment


def _agrees(alert: dict[str, Any], snapshot: dict[str, Any]) -> bool:
    return all(snapshot.get(name) == value for name, value in alert["scores"].items())


@pytest.mark.parametrize("run", ["fallback", "learned"])
def test_every_alert_agrees_with_its_snapshot(replays: dict[str, Replayed], run: str) -> None:
    replayed = replays[run]
    by_moment = _snapshots_by_moment(replayed)
    alerts = [orjson.loads(raw) for raw in replayed.alerts]
    kinds = Counter(a["alert_type"] for a in alerts)
    assert kinds["high_value_at_risk"] > 0 and kinds["value_group_changed"] > 0, kinds
    threshold_alive = SETTINGS.p_alive_alert_threshold
    for alert in alerts:
        moment = (alert["customer_id"], alert["event_time"])
        candidates = [s for s in by_moment.get(moment, []) if _agrees(alert, s)]
        assert candidates, f"no snapshot at {moment} carries the scores of {alert}"
        scores, details = alert["scores"], alert["details"]
        match alert["alert_type"]:
            case "high_value_at_risk":
                assert scores["value_group"] == "high_value_at_risk", alert
                # At the second after the solved crossing (the solver's tolerance: 1e-6).
                assert scores["p_alive"] < threshold_alive + 1e-6, alert
            case "churn_risk":
                assert scores["churn_probability"] == details["churn_probability"], alert
                assert scores["churn_probability"] >= details["threshold"], alert
                group = scores["value_group"]
                assert group in (None, "no_value") or group.endswith("_at_risk"), alert
            case "value_group_changed":
                assert scores["value_group"] == details["to"] != details["from"], alert
            case "segment_changed":
                assert scores["segment"] in alert["idempotency_key"], alert


def test_the_learned_model_scores_the_second_replay(replays: dict[str, Replayed]) -> None:
    versions = Counter(
        orjson.loads(raw)["churn_model_version"] for raw in replays["learned"].snapshots
    )
    assert versions["1"] > 0.5 * sum(versions.values()), versions
