"""Churn scores from a learned model: which version scored, the reasons in words, features."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from crm_core.errors import ModelError
from scorers.bgnbd import BgNbdParams
from scorers.churn_features import (
    FEATURE_NAMES,
    RecentActivity,
    churn_features,
    present,
    reason_text,
)
from scorers.churn_model import ChurnModel
from scorers.churn_scoring import FALLBACK_VERSION, ChurnModelRef, ChurnPolicy, ChurnScoring
from scorers.pareto_nbd import ParetoNbdParams
from scorers.probability import ProbabilityModel
from scorers.probability_batch import score_batch
from scorers.profile import Profile
from scorers.purchase_models import PurchaseModel

DAY = 86_400


def _row(complaints: float, drop: float, recency: float) -> dict[str, float]:
    row = dict.fromkeys(FEATURE_NAMES, 0.0)
    row.update(complaints_30d=complaints, open_rate_drop=drop, recency_days=recency)
    row["mean_gap_days"] = 20.0
    return row


def _trained(n: int = 4000) -> ChurnModel:
    """Churn is driven by complaints and falling opens; recency is noise here."""
    rng = random.Random(3)
    model = ChurnModel("logistic")
    for _ in range(n):
        complaints, drop = rng.choice([0, 0, 0, 1, 2, 3]), rng.random()
        row = _row(complaints, drop, rng.uniform(0, 60))
        p = 1 / (1 + pow(2.718281828, -(-2.0 + 1.2 * complaints + 2.5 * drop)))
        model.learn(row, int(rng.random() < p))
    return model


def test_scores_name_the_model_version_and_give_reasons_in_words() -> None:
    model = _trained()
    churn = ChurnScoring(ChurnPolicy(min_examples=1000), ChurnModelRef("7", model.compile()))
    unhappy, content = _row(3, 0.8, 10), _row(0, 0.0, 10)
    high, low = churn.score([unhappy, content], [0.9, 0.9])
    assert high.version == low.version == "7"
    assert high.probability is not None and low.probability is not None
    assert high.probability > 0.7 > 0.3 > low.probability
    assert high.reasons[:2] == ["about 3 complaints in 30 days", "opens fell 80%"]
    assert low.reasons == []  # under alert_reset nobody reads reasons


def test_too_young_a_model_falls_back_to_one_minus_p_alive() -> None:
    model = _trained(500)
    churn = ChurnScoring(ChurnPolicy(min_examples=1000), ChurnModelRef("3", model.compile()))
    (score,) = churn.score([_row(3, 0.8, 10)], [0.4])
    assert score.version == FALLBACK_VERSION and score.probability == pytest.approx(0.6)


def test_features_of_a_profile_and_recent_activity() -> None:
    profile = Profile(
        first_purchase_at=0, last_purchase_at=40 * DAY, orders=3, gross_minor=12_000,
        messages_delivered=20, messages_opened=10, tickets_opened=2, complaints=2,
    )  # fmt: skip
    recent = RecentActivity()
    for day in (45, 50):
        recent = recent.add("complaints", day * DAY).add("delivered", day * DAY)
    row = churn_features(
        profile, recent, 50 * DAY, quintiles=(2, 3, 4), p_alive=0.4,
        expected_purchases_90d=0.8, last_gap_seconds=30 * DAY,
    )  # fmt: skip
    assert list(row) == list(FEATURE_NAMES)
    assert row["recency_days"] == 10 and row["mean_gap_days"] == 20
    assert row["last_gap_ratio"] == 1.5 and row["recency_gap_ratio"] == 0.5
    assert row["complaints_30d"] == round(1 + 2.718281828 ** (-5 / 30), 3)  # 3 decimals
    assert row["open_rate"] == 0.5 and row["open_rate_30d"] == 0.0  # no opens lately
    assert row["open_rate_drop"] == 1.0
    assert reason_text("open_rate_drop", row) == "opens fell 100%"
    assert reason_text("recency_days", row) == "no purchase for 10 days; usually buys every 20 days"


def test_an_email_engagement_after_the_last_order_is_a_sign_of_life() -> None:
    profile = Profile(first_purchase_at=0, last_purchase_at=40 * DAY, orders=2)
    engaged = profile._replace(last_engagement_at=45 * DAY)
    before = profile._replace(last_engagement_at=30 * DAY)
    rows = [
        churn_features(
            p,
            RecentActivity(),
            50 * DAY,
            quintiles=None,
            p_alive=None,
            expected_purchases_90d=None,
            last_gap_seconds=None,
        )
        for p in (engaged, before, profile)
    ]
    assert [(r["days_since_activity"], r["engaged_since_order"]) for r in rows] == [
        (5.0, 1.0), (10.0, 0.0), (10.0, 0.0)
    ]  # fmt: skip
    assert reason_text("engaged_since_order", rows[1]) == (
        "no email opened or clicked since the last order"
    )


def test_a_row_stored_before_the_last_features_were_appended_lacks_only_them() -> None:
    full = [float(i) for i in range(len(FEATURE_NAMES))]
    old = present(full[:-2])
    assert old == {name: v for name, v in present(full).items() if name in FEATURE_NAMES[:-2]}
    with pytest.raises(ModelError, match="upgrade"):
        present([*full, 1.0])


def test_recent_activity_does_not_depend_on_the_order_signals_arrive_in() -> None:
    times = [3 * DAY, 10 * DAY, 1 * DAY, 7 * DAY]
    forward, backward = RecentActivity(), RecentActivity()
    for t in times:
        forward = forward.add("opened", t)
    for t in reversed(times):
        backward = backward.add("opened", t)
    assert forward.value("opened", 20 * DAY) == pytest.approx(backward.value("opened", 20 * DAY))
    assert RecentActivity.from_list(forward.to_list()) == forward


def test_the_vectorised_path_equals_the_row_by_row_one() -> None:
    model = _trained()
    scorer = model.compile()
    rng = random.Random(9)
    rows = [_row(rng.choice([0, 1, 3]), rng.random(), rng.uniform(0, 90)) for _ in range(200)]
    rows[0]["never_seen"] = 5.0  # a feature outside FEATURE_NAMES is ignored by both
    values = [[row[name] for name in FEATURE_NAMES] for row in rows]
    matrix = np.asarray(values)
    assert scorer.score_matrix(matrix, FEATURE_NAMES).tolist() == pytest.approx(
        scorer.score_many(rows), abs=1e-12
    )
    churn = ChurnScoring(ChurnPolicy(min_examples=1), ChurnModelRef("7", scorer))
    fast, slow = churn.score_values(values), churn.score_rows(rows)
    assert [s.probability for s in fast] == pytest.approx([s.probability for s in slow], abs=1e-12)
    assert [s.reasons for s in fast] == [s.reasons for s in slow]
    assert any(s.reasons for s in fast)


def test_scores_not_published_yet_are_missing_features_not_fills() -> None:
    row = churn_features(
        Profile(first_purchase_at=0, last_purchase_at=DAY, orders=2, gross_minor=100),
        RecentActivity(), 2 * DAY, quintiles=None, p_alive=None, expected_purchases_90d=None,
        last_gap_seconds=DAY,
    )  # fmt: skip
    assert {"p_alive", "expected_purchases_90d", "r_score", "f_score", "m_score"}.isdisjoint(row)
    assert len(row) == len(FEATURE_NAMES) - 5
    scorer = _trained().compile()
    full = _row(3, 0.8, 10)
    values = [[full[name] for name in FEATURE_NAMES]]
    values[0][FEATURE_NAMES.index("p_alive")] = float("nan")
    without = {k: v for k, v in full.items() if k != "p_alive"}
    assert scorer.score_matrix(np.asarray(values), FEATURE_NAMES).tolist() == pytest.approx(
        scorer.score_many([without]), abs=1e-12
    )


@pytest.mark.parametrize("kind", ["mbgnbd", "pareto_nbd"])
def test_the_cold_start_fallback_scores_a_silent_one_time_buyer_with_the_dropout_model(
    kind: str,
) -> None:
    """1 - P(alive) from the dropout model: a one-time buyer's churn score rises with their
    silence (BG/NBD would keep it at 0 forever)."""
    bg = BgNbdParams(0.243, 4.414, 0.793, 2.426)
    classic = ProbabilityModel("1", datetime(2026, 1, 1, tzinfo=UTC), bg, None, 2357, -9582.4)
    purchases = (
        PurchaseModel("pareto_nbd", ParetoNbdParams(0.553, 10.578, 0.606, 11.669), -9595.0)
        if kind == "pareto_nbd"
        else PurchaseModel("mbgnbd", BgNbdParams(0.525, 6.183, 0.891, 1.614), -9582.1)
    )
    model = replace(classic, purchases=purchases)
    once = Profile(first_purchase_at=0, last_purchase_at=0, orders=1, purchase_days=1)
    churn = ChurnScoring(ChurnPolicy())
    silences = [7 * DAY, 60 * DAY, 180 * DAY, 400 * DAY]
    scores = []
    for alive in score_batch(model, [once] * 4, [float(s) for s in silences]).p_alive:
        score = churn.fallback(float(alive), lambda: _row(0, 0.0, 0.0))
        assert score.version == FALLBACK_VERSION and score.probability is not None
        scores.append(score.probability)
    assert scores[0] > 0.0 and all(a < b for a, b in itertools.pairwise(scores))
    assert list(score_batch(classic, [once] * 4, [float(s) for s in silences]).p_alive) == [1.0] * 4
