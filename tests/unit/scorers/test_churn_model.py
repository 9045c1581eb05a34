"""ChurnModel and its compiled ChurnScorer: equal to river, explainable, frozen, picklable."""

from __future__ import annotations

import doctest
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scorers.churn_model
from crm_core.errors import ModelError
from scorers.churn_model import ChurnModel, ChurnScorer, ModelKind

NAMES = ["a", "b", "c", "d", "const"]
values = st.floats(-1e4, 1e4, allow_nan=False)


@st.composite
def rows(draw: st.DrawFn, names: list[str]) -> dict[str, float]:
    """A row with any subset of ``names``; "const" (when drawn) is always 3.0: zero variance."""
    chosen = draw(st.lists(st.sampled_from(names), unique=True))
    return {n: 3.0 if n == "const" else draw(values) for n in chosen}


training = st.lists(st.tuples(rows(NAMES), st.integers(0, 1)), max_size=60)
# Queries may carry features never seen in training.
queries = st.lists(rows([*NAMES, "unseen"]), max_size=15)


def trained(kind: ModelKind, examples: list[tuple[dict[str, float], int]]) -> ChurnModel:
    model = ChurnModel(kind)
    for x, y in examples:
        model.learn(x, y)
    return model


def synthetic(n: int, seed: int = 0) -> list[tuple[dict[str, float], int]]:
    """Churn is likelier with more days since the last order and fewer orders."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        days, orders, noise = rng.uniform(0, 90), rng.poisson(5), rng.normal()
        logit = 0.08 * (days - 45) - 0.4 * (orders - 5)
        y = int(rng.random() < 1 / (1 + math.exp(-logit)))
        out.append(({"days": float(days), "orders": float(orders), "noise": float(noise)}, y))
    return out


@settings(max_examples=150, deadline=None)
@given(examples=training, batch=queries)
def test_compiled_logistic_equals_river_on_every_row(
    examples: list[tuple[dict[str, float], int]], batch: list[dict[str, float]]
) -> None:
    model = trained("logistic", examples)
    scorer = model.compile()
    expected = [model.predict_proba(x) for x in batch]
    assert scorer.score_many(batch) == pytest.approx(expected, abs=1e-9, rel=0)


@settings(max_examples=100, deadline=None)
@given(examples=training, batch=queries)
def test_contributions_are_the_logit_up_to_one_intercept(
    examples: list[tuple[dict[str, float], int]], batch: list[dict[str, float]]
) -> None:
    scorer = trained("logistic", examples).compile()
    baseline = scorer.score_many([{}])[0]  # only the intercept
    intercept = math.log(baseline / (1 - baseline))
    for x, p in zip(batch, scorer.score_many(batch), strict=True):
        contributions = scorer.contributions(x)
        assert set(contributions) == set(x) & set(scorer.feature_names)
        logit = intercept + sum(contributions.values())
        if abs(logit) < 25:  # away from saturation, p pins the logit down
            assert math.log(p / (1 - p)) == pytest.approx(logit, abs=1e-6)
        reasons = scorer.top_reasons(x, k=2)
        positive = sorted((c for c in contributions.values() if c > 0), reverse=True)
        assert [c for _, c in reasons] == positive[:2]
        assert all(contributions[name] == c for name, c in reasons)


def test_zero_variance_missing_and_unseen_features_contribute_nothing() -> None:
    model = trained("logistic", [({"x": float(i), "flat": 1.0}, i % 2) for i in range(50)])
    scorer = model.compile()
    assert scorer.feature_names == ("flat", "x")
    assert scorer.contributions({"flat": 99.0, "new": 5.0}) == {"flat": 0.0}
    alone = scorer.score_many([{}])
    assert scorer.score_many([{"flat": 99.0, "new": 5.0}]) == alone
    assert model.predict_proba({"flat": 99.0, "new": 5.0}) == pytest.approx(alone[0], abs=1e-12)


def test_learns_a_known_direction_and_explains_it() -> None:
    model = trained("logistic", synthetic(3000))
    scorer = model.compile()
    churner, loyal = {"days": 85.0, "orders": 1.0, "noise": 0.0}, {"days": 5.0, "orders": 12.0}
    p_churner, p_loyal = scorer.score_many([churner, loyal])
    assert p_churner > 0.8 > 0.2 > p_loyal
    reasons = scorer.top_reasons(churner)
    assert [name for name, _ in reasons[:2]] == ["days", "orders"]
    assert all(c < 0.1 * reasons[0][1] for _, c in reasons[2:])  # noise, if at all, is minor
    assert scorer.top_reasons(loyal) == []
    assert scorer.top_reasons(churner, k=1) == scorer.top_reasons(churner)[:1]
    assert scorer.top_reasons(churner, k=0) == []


@pytest.mark.parametrize("kind", ["logistic", "hoeffding"])
def test_predicts_one_half_before_learning(kind: ModelKind) -> None:
    model = ChurnModel(kind)
    assert model.predict_proba({"days": 3.0}) == 0.5
    assert model.compile().score_many([{"days": 3.0}, {}]) == [0.5, 0.5]
    assert model.compile().score_many([]) == []


@pytest.mark.parametrize("kind", ["logistic", "hoeffding"])
def test_compiled_scorer_is_frozen_and_round_trips(kind: ModelKind) -> None:
    data = synthetic(600, seed=1)
    model = trained(kind, data[:400])
    scorer = model.compile()
    batch = [x for x, _ in data[400:450]]
    before = scorer.score_many(batch)
    assert before == pytest.approx([model.predict_proba(x) for x in batch], abs=1e-9, rel=0)
    for x, y in data[400:]:
        model.learn(x, y)
    assert scorer.score_many(batch) == before
    assert (scorer.kind, scorer.n_examples) == (kind, 400)
    assert scorer.feature_names == ("days", "noise", "orders")
    restored = ChurnScorer.from_bytes(scorer.to_bytes())
    assert restored.score_many(batch) == before
    assert pickle.loads(pickle.dumps(scorer)).score_many(batch) == before


@pytest.mark.parametrize("kind", ["logistic", "hoeffding"])
def test_model_round_trip_continues_identically(kind: ModelKind) -> None:
    data = synthetic(500, seed=2)
    model = trained(kind, data[:300])
    copy = ChurnModel.from_bytes(model.to_bytes())
    assert (copy.kind, copy.n_examples) == (kind, 300)
    for x, y in data[300:]:
        assert copy.predict_proba(x) == model.predict_proba(x)
        model.learn(x, y)
        copy.learn(x, y)
    probe = [x for x, _ in synthetic(50, seed=3)]
    assert [copy.predict_proba(x) for x in probe] == [model.predict_proba(x) for x in probe]
    assert copy.compile().feature_names == model.compile().feature_names


def test_hoeffding_scorer_has_no_linear_explanations() -> None:
    scorer = trained("hoeffding", synthetic(300)).compile()
    x = {"days": 80.0, "orders": 1.0}
    assert scorer.contributions(x) == {}
    assert scorer.top_reasons(x) == []


def test_hoeffding_learns_the_direction() -> None:
    model = trained("hoeffding", synthetic(3000))
    assert model.predict_proba({"days": 85.0, "orders": 1.0, "noise": 0.0}) > 0.5
    assert model.predict_proba({"days": 5.0, "orders": 12.0, "noise": 0.0}) < 0.5


def test_from_bytes_rejects_other_formats() -> None:
    model = trained("logistic", synthetic(20))
    with pytest.raises(ModelError, match=r"ChurnScorer\.to_bytes"):
        ChurnScorer.from_bytes(model.to_bytes())
    with pytest.raises(ModelError, match=r"ChurnModel\.to_bytes"):
        ChurnModel.from_bytes(model.compile().to_bytes())
    with pytest.raises(ModelError, match="cannot read"):
        ChurnModel.from_bytes(b"not a pickle")
    with pytest.raises(ModelError, match="format"):
        ChurnModel.from_bytes(pickle.dumps({"weights": [1.0]}))


def test_rejects_bad_labels_kinds_and_k() -> None:
    with pytest.raises(ModelError, match="0 or 1"):
        ChurnModel().learn({"x": 1.0}, 2)
    with pytest.raises(ModelError, match="kind"):
        ChurnModel("forest")  # type: ignore[arg-type]  # the point: an invalid kind
    with pytest.raises(ModelError, match="k="):
        ChurnModel().compile().top_reasons({}, k=-1)


def test_int_and_bool_labels_are_the_same_class() -> None:
    ints, bools = ChurnModel(), ChurnModel()
    for x, y in synthetic(200):
        ints.learn(x, y)
        bools.learn(x, bool(y))
    probe = [x for x, _ in synthetic(50, seed=3)]
    assert [ints.predict_proba(x) for x in probe] == [bools.predict_proba(x) for x in probe]
    assert ints.n_examples == 200


def test_doctests() -> None:
    assert doctest.testmod(scorers.churn_model, raise_on_error=True).attempted > 0
