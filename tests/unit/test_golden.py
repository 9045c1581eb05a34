"""The golden output file: the round's outputs on a seeded scenario, record by record.

``tests/data/golden/`` holds a simulated shop (1,000 customers, a year, 41k events, 1 % of the
orders starting a purchase anomaly), the probability model and RFM boundaries a worker would be
given (fitted as of 30 % of the year), three churn model versions the learner published from the
examples of the replay itself (at 40, 60 and 80 % of the year, with its clusters), and every
output of replaying them through the worker's round code (:class:`streams.round.scorer.RoundScorer`
via :class:`crm_score.evaluate_replay.RoundReplay`), in order: 54,814 score snapshots (RFM,
quintiles, segment, value group, P(alive), expected purchases, CLV, next purchase, churn
probability, model versions, reasons, cluster), 8,604 alerts of the seven types the round raises
(churn_risk, high_value_at_risk, segment_changed, win_back, purchase_anomaly,
service_escalation, value_group_changed), 6,262 training examples, and each round's due times.
Snapshots are scored first by the cold-start fallback, then by each churn version.

What the in-process replay leaves out, compared with a worker:

- Kafka and Redis. Events are parsed and deduplicated by ``read_events`` (the first occurrence
  of an id wins) and released in exact event-time order, so no event is late: the round's
  ``late`` path is not exercised here (``tests/unit/streams/round/test_scorer.py`` covers it). One
  partition; one round per day of event time (a worker's rounds follow its watermark and are
  much smaller; outputs do not depend on the round size except through when timers fire).
- Alert dedup through Redis claims (``RoundStore.save``): the file holds every alert the scorer
  drafted; a worker publishes those whose idempotency key was not claimed before.
- ``cross_sell`` alerts (:mod:`streams.cross_sell`, decided from Redis counters beside the
  round) and ``model_drift`` alerts (the learner's) are not round-scorer outputs.
- The query API's index, the journal, the outboxes, and the population refresh: the probability
  model and RFM boundaries stay the published ones; churn versions are swapped between rounds,
  as :class:`streams.refresh.ModelFollower` would.

The inputs are stored, not simulated or fitted again, so a change to the simulator or to the
fitting code does not move this test; a change to what the round outputs does. If a deliberate
fix changes outputs, re-record with ``python -m tests.golden.record`` (then ``--check`` to see
the same bytes come out again) in a commit of its own whose message says which outputs changed
and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas import AlertType
from scorers.churn_scoring import FALLBACK_VERSION
from tests.golden.compare import TOLERANCE, first_difference
from tests.golden.scenario import (
    EVENTS,
    GOLDEN_DIR,
    OUTPUTS,
    PUBLISHED,
    Published,
    Record,
    read_records,
    replay,
    scheduled,
    unpacked,
)

#: Alerts raised by other parts than the round (see the module docstring).
NOT_FROM_THE_ROUND = {AlertType.CROSS_SELL, AlertType.MODEL_DRIFT}


@pytest.fixture(scope="module")
def published() -> Published:
    return Published.from_bytes((GOLDEN_DIR / PUBLISHED).read_bytes())


def _replayed(published: Published, tmp: Path) -> Iterator[Record]:
    events = unpacked(GOLDEN_DIR / EVENTS, tmp / "events.jsonl")
    return replay(events, published, scheduled(published.churn))


def test_the_round_gives_the_golden_outputs(
    published: Published, tmp_path_factory: pytest.TempPathFactory
) -> None:
    replayed = _replayed(published, tmp_path_factory.mktemp("golden"))
    problem = first_difference(read_records(GOLDEN_DIR / OUTPUTS), replayed)
    assert problem is None, (
        f"the round's outputs moved from the golden file at {problem}. If that is a deliberate "
        "fix, re-record with `python -m tests.golden.record` in a commit of its own that says "
        "which outputs changed and why; otherwise the change broke the round."
    )


def test_the_golden_file_exercises_every_alert_and_the_churn_models(published: Published) -> None:
    kinds: dict[str, int] = {}
    alerts: set[str] = set()
    churn_versions: set[str | None] = set()
    triggers: set[str] = set()
    probability: set[str | None] = set()
    for record in read_records(GOLDEN_DIR / OUTPUTS):
        kinds[record["type"]] = kinds.get(record["type"], 0) + 1
        value = record.get("value", {})
        if record["type"] == "alert":
            alerts.add(value["alert_type"])
        elif record["type"] == "snapshot":
            churn_versions.add(value["churn_model_version"])
            triggers.add(value["trigger"])
            probability.add(value["probability_model_version"])
    assert alerts == {t.value for t in AlertType} - {t.value for t in NOT_FROM_THE_ROUND}
    releases = [release.version for release in published.churn]
    assert len(releases) == 3
    assert churn_versions == {None, FALLBACK_VERSION, *releases}  # None: no order yet
    assert triggers == {"event", "timer"}
    assert "1" in probability
    assert kinds["publish"] == len(releases)
    assert kinds["round"] == 365
    assert kinds["example"] > 0 and kinds["due"] > 0


def _snapshot(p_alive: object, **more: object) -> Record:
    return {"type": "snapshot", "value": {"customer_id": "c1", "p_alive": p_alive, **more}}


def test_first_difference_names_the_record_and_the_field() -> None:
    rounds: Record = {"type": "round", "limit": 10}
    golden = [rounds, _snapshot(0.5, reasons=["a"])]
    assert (
        first_difference(golden, [rounds, _snapshot(0.5 + TOLERANCE / 10, reasons=["a"])]) is None
    )
    moved = first_difference(golden, [rounds, _snapshot(0.5 + 1e-6, reasons=["a"])])
    assert moved is not None and moved.startswith("record 1 (snapshot")
    assert "record.value.p_alive: expected 0.5, got 0.500001" in moved
    typed = first_difference(golden, [rounds, _snapshot(1, reasons=["a"])])
    assert typed is not None and "record.value.p_alive" in typed and "(int)" in typed
    listed = first_difference(golden, [rounds, _snapshot(0.5, reasons=["b"])])
    assert listed is not None and "record.value.reasons[0]: expected 'a', got 'b'" in listed
    reordered = [rounds, {"type": "snapshot", "value": {"p_alive": 0.5, "customer_id": "c1"}}]
    keys = first_difference([rounds, _snapshot(0.5)], reordered)
    assert keys is not None and "keys differ" in keys
    short = first_difference(golden, [rounds])
    assert short is not None and short.startswith("record 1: expected snapshot")
    assert "got nothing" in short
