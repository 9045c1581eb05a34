"""PrequentialMetrics against a batch oracle (sklearn and numpy on the same predictions)."""

from __future__ import annotations

import doctest
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss, roc_auc_score

import scorers.prequential
from crm_core.errors import ModelError
from scorers.prequential import PrequentialMetrics

KEYS = {
    "n",
    "positives",
    "auc",
    "log_loss",
    "top_decile_recall",
    "window_n",
    "window_auc",
    "window_log_loss",
    "window_top_decile_recall",
}

# Few distinct values so ties (and exact 0 / 1) are common, plus arbitrary probabilities.
probabilities = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0]) | st.floats(0.0, 1.0)
examples = st.lists(st.tuples(probabilities, st.integers(0, 1)), max_size=120)


def oracle(pairs: list[tuple[float, int]]) -> dict[str, float | int | None]:
    """The cumulative metrics recomputed from scratch."""
    if not pairs:
        return {"n": 0, "positives": 0, "auc": None, "log_loss": None, "top_decile_recall": None}
    p = np.array([q for q, _ in pairs], dtype=np.float64)
    y = np.array([label for _, label in pairs], dtype=np.int64)
    both = 0 < y.sum() < len(y)
    # Tie rule under test: among equal scores, negatives rank first (np.lexsort: last key primary).
    order = np.lexsort((y, -p))
    top = order[: math.ceil(len(y) / 10)]
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "auc": float(roc_auc_score(y, p)) if both else None,
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "top_decile_recall": float(y[top].sum() / y.sum()) if y.sum() else None,
    }


def assert_matches(got: dict[str, float | int | None], want: dict[str, float | int | None]) -> None:
    for key, expected in want.items():
        actual = got[key]
        if expected is None or isinstance(expected, int):
            assert actual == expected, key
        else:
            assert actual == pytest.approx(expected, rel=1e-12, abs=1e-12), key


def feed(metrics: PrequentialMetrics, pairs: list[tuple[float, int]]) -> None:
    for p, y in pairs:
        metrics.update(p, y)


@settings(max_examples=300, deadline=None)
@given(pairs=examples, window=st.integers(1, 30))
def test_cumulative_and_window_metrics_equal_batch_oracle(
    pairs: list[tuple[float, int]], window: int
) -> None:
    metrics = PrequentialMetrics(window=window)
    feed(metrics, pairs)
    snap = metrics.snapshot()
    assert set(snap) == KEYS
    assert_matches(snap, oracle(pairs))
    recent = oracle(pairs[-window:])
    del recent["positives"]  # the window reports no positives count
    assert_matches({k.removeprefix("window_"): snap[k] for k in KEYS if "window" in k}, recent)


@settings(max_examples=100, deadline=None)
@given(pairs=examples, window=st.integers(1, 15), cut=st.integers(0, 120))
def test_every_prefix_matches_and_window_is_bounded(
    pairs: list[tuple[float, int]], window: int, cut: int
) -> None:
    metrics = PrequentialMetrics(window=window)
    cut = min(cut, len(pairs))
    feed(metrics, pairs[:cut])
    snap = metrics.snapshot()
    assert_matches(snap, oracle(pairs[:cut]))
    assert snap["window_n"] == min(cut, window)


@settings(max_examples=100, deadline=None)
@given(pairs=examples, window=st.integers(1, 20), cut=st.integers(0, 120))
def test_pickle_round_trip_preserves_snapshot_and_further_updates(
    pairs: list[tuple[float, int]], window: int, cut: int
) -> None:
    original = PrequentialMetrics(window=window)
    feed(original, pairs[:cut])
    copy = pickle.loads(pickle.dumps(original))
    assert copy.snapshot() == original.snapshot()
    feed(original, pairs[cut:])
    feed(copy, pairs[cut:])
    assert copy.snapshot() == original.snapshot()


def test_auc_counts_ties_as_half_and_is_exact_on_many_ties() -> None:
    metrics = PrequentialMetrics()
    rng = np.random.default_rng(7)
    p = rng.integers(0, 5, 5000) / 4
    y = rng.integers(0, 2, 5000)
    feed(metrics, [(float(a), int(b)) for a, b in zip(p, y, strict=True)])
    assert metrics.snapshot()["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    constant = PrequentialMetrics()
    feed(constant, [(0.3, 1), (0.3, 0), (0.3, 0)])
    assert constant.snapshot()["auc"] == 0.5


def test_top_decile_tie_rule_is_pessimistic() -> None:
    metrics = PrequentialMetrics()
    feed(metrics, [(0.5, 1)] + [(0.5, 0)] * 9)  # k = 1, all tied: a negative takes the slot
    assert metrics.snapshot()["top_decile_recall"] == 0.0
    feed(metrics, [(0.9, 1)])  # n = 11 -> k = 2: the 0.9 positive, then a tied negative
    assert metrics.snapshot()["top_decile_recall"] == 0.5


def test_empty_and_single_class_snapshot() -> None:
    metrics = PrequentialMetrics()
    assert metrics.snapshot() == dict.fromkeys(KEYS) | {"n": 0, "positives": 0, "window_n": 0}
    feed(metrics, [(0.2, 0), (0.4, 0)])
    snap = metrics.snapshot()
    assert snap["auc"] is None
    assert snap["top_decile_recall"] is None
    assert snap["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)


@pytest.mark.parametrize(("p", "y"), [(0.5, 2), (0.5, -1), (1.5, 1), (-0.1, 0), (math.nan, 1)])
def test_rejects_invalid_examples(p: float, y: int) -> None:
    with pytest.raises(ModelError):
        PrequentialMetrics().update(p, y)


def test_rejects_empty_window() -> None:
    with pytest.raises(ModelError, match="window"):
        PrequentialMetrics(window=0)


def test_doctests() -> None:
    assert doctest.testmod(scorers.prequential, raise_on_error=True).attempted > 0
