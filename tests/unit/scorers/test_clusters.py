"""The exploratory segmentation: finds planted groups, travels as bytes, rides in snapshots."""

from __future__ import annotations

import random

import numpy as np
import orjson

from crm_core.settings import Settings
from scorers.churn_features import FEATURE_NAMES
from scorers.clusters import CLUSTER_FEATURES, ClusterAssigner, CustomerClusters
from scorers.learner import OnlineLearner
from scorers.profile import Profile
from scorers.timeline import CustomerState
from streams.round.scorer import CustomerBefore, RoundScorer, round_scorer
from tests.unit.hand_built import DAY, T0

_GROUPS = [  # loyal regulars, lapsed one-timers, engaged newcomers
    {"recency_days": 5.0, "log_orders": 2.5, "open_rate": 0.6, "days_since_engagement": 3.0},
    {"recency_days": 250.0, "log_orders": 0.7, "open_rate": 0.05, "days_since_engagement": 300},
    {"recency_days": 20.0, "log_orders": 0.7, "open_rate": 0.8, "days_since_engagement": 1.0},
]


def _stream(n: int, seed: int = 0) -> list[tuple[int, dict[str, float]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        g = rng.randrange(3)
        row = {k: v * (1 + rng.gauss(0, 0.1)) for k, v in _GROUPS[g].items()}
        out.append((g, row))
    return out


def _fitted() -> CustomerClusters:
    clusters = CustomerClusters(n_clusters=3, seed=4)
    for _, row in _stream(3000):
        clusters.learn(row)
    return clusters


def test_planted_groups_get_their_own_clusters() -> None:
    assigner = _fitted().compile()
    test = _stream(600, seed=1)
    ids = assigner.assign_rows([row for _, row in test])
    by_group: dict[int, list[int]] = {}
    for (g, _), k in zip(test, ids, strict=True):
        by_group.setdefault(g, []).append(k)
    majority = {g: max(set(ks), key=ks.count) for g, ks in by_group.items()}
    assert len(set(majority.values())) == 3  # three groups, three different clusters
    purity = sum(ks.count(majority[g]) for g, ks in by_group.items()) / len(test)
    assert purity > 0.95
    centres = assigner.centres_in_units()
    recency = sorted(c["recency_days"] for c in centres)  # in days again, near the planted ones
    assert [round(r / e, 1) for r, e in zip(recency, (5, 20, 250), strict=True)] == [1.0] * 3


def test_assigner_round_trips_and_matrix_equals_rows() -> None:
    assigner = _fitted().compile()
    rows = [row for _, row in _stream(50, seed=2)]
    again = ClusterAssigner.from_bytes(assigner.to_bytes())
    matrix = np.array([[row.get(n, 0.0) for n in FEATURE_NAMES] for row in rows])
    assert again.assign_rows(rows) == assigner.assign_rows(rows)
    assert assigner.assign_matrix(matrix, FEATURE_NAMES) == assigner.assign_rows(rows)
    assert set(CLUSTER_FEATURES) <= set(FEATURE_NAMES)


def test_the_learner_learns_the_segmentation_and_checkpoints_it() -> None:
    learner = OnlineLearner()
    for n, (g, row) in enumerate(_stream(400)):
        learner.learn_one(f"k{n}", row, int(g == 1))
    restored = OnlineLearner.restore(learner.checkpoint())
    assert restored.clusters.ready and restored.clusters.n_examples == 400
    rows = [row for _, row in _stream(20, seed=3)]
    assert restored.clusters.compile().assign_rows(rows) == learner.clusters.compile().assign_rows(
        rows
    )


def test_scored_snapshots_carry_the_cluster() -> None:
    scorer: RoundScorer = round_scorer(Settings())
    assert scorer.churn is not None
    scorer.churn.clusters = _fitted().compile()
    profile = Profile(first_purchase_at=T0, last_purchase_at=T0, orders=1, gross_minor=5000)
    state = CustomerState(evaluated_at=T0, last_purchase_at=T0, last_snapshot_at=T0)
    out = scorer.score([], {"c": CustomerBefore(profile, state, 0)}, {0: T0 + 200 * DAY})
    clusters = {orjson.loads(m.value)["cluster"] for m in out.snapshots}
    assert clusters and clusters <= {0, 1, 2}
