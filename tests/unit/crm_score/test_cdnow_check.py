"""CDNOW through the streaming path (events -> profiles -> the population fit) against the
published figures, and the holdout comparison that picks the default dropout model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from crm_core.settings import Settings
from crm_score.cdnow_check import CALIBRATION_END, PUBLISHED, cdnow_profiles, cdnow_report
from crm_score.datasets import cdnow_summary, load_cdnow_sample
from scorers.bgnbd import BgNbdParams, p_alive
from scorers.probability import DEFAULT_DROPOUT, summary_of
from tests.paths import CDNOW_SAMPLE


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return cdnow_report(load_cdnow_sample(CDNOW_SAMPLE))


def test_streamed_profiles_summarise_as_the_batch_recomputation() -> None:
    """Same-day records are one transaction in the profile, as in the published summary."""
    df = load_cdnow_sample(CDNOW_SAMPLE)
    profiles = cdnow_profiles(df)
    batch = cdnow_summary(df)
    assert len(profiles) == len(batch) == 2357
    for customer, row in batch.iterrows():
        s = summary_of(profiles[f"cdnow-{customer}"], CALIBRATION_END)
        assert s is not None
        assert s.x == row["x"]
        assert s.t_x == pytest.approx(row["t_x"], abs=1e-12)
        assert pytest.approx(row["T"], abs=1e-12) == s.T
        assert s.mean_value == pytest.approx(row["mean_value"], abs=0.006)  # cents rounding


@pytest.mark.parametrize("name", ["r", "alpha", "a", "b", "log_likelihood"])
def test_bgnbd_through_the_stream_matches_the_published_fit(
    report: dict[str, Any], name: str
) -> None:
    assert report["ours"]["bgnbd"][name] == pytest.approx(PUBLISHED["bgnbd"][name], rel=0.01)
    assert report["ours"]["bgnbd"]["time_unit"] == "week"


@pytest.mark.parametrize("name", ["p", "q", "gamma"])
def test_gamma_gamma_on_repeat_transactions_matches_the_published_fit(
    report: dict[str, Any], name: str
) -> None:
    published = PUBLISHED["gamma_gamma"][name]
    assert report["ours"]["gamma_gamma"][name] == pytest.approx(published, rel=0.02)
    assert report["repeat_buyers"] == 946


@pytest.mark.parametrize("name", ["r", "alpha", "s", "beta"])
def test_pareto_nbd_through_the_stream_matches_the_published_fit(
    report: dict[str, Any], name: str
) -> None:
    ours = report["ours"]["pareto_nbd"]
    assert ours["params"][name] == pytest.approx(PUBLISHED["pareto_nbd"][name], rel=0.01)
    published_ll = PUBLISHED["pareto_nbd"]["log_likelihood"]
    assert ours["log_likelihood"] == pytest.approx(published_ll, rel=0.01)


def test_p_alive_of_the_papers_customer(report: dict[str, Any]) -> None:
    ours = report["ours"]["bgnbd"]
    fitted = BgNbdParams(ours["r"], ours["alpha"], ours["a"], ours["b"])
    published = BgNbdParams(*(PUBLISHED["bgnbd"][k] for k in ("r", "alpha", "a", "b")))
    assert p_alive(fitted, 2, 30.43, 38.86) == pytest.approx(
        p_alive(published, 2, 30.43, 38.86), rel=1e-3
    )


def test_the_default_dropout_model_predicts_the_holdout_best(report: dict[str, Any]) -> None:
    """Of the models that let one-time buyers drop out, the default has the lower per-customer
    error and the closer tracking curve over weeks 40-78."""
    holdout = report["holdout"]
    candidates = ("mbgnbd", "pareto_nbd")
    for metric in ("holdout_mae", "tracking_mape_holdout"):
        best = min(candidates, key=lambda k: holdout[k][metric])
        assert best == DEFAULT_DROPOUT, metric
    assert Settings().dropout_model == DEFAULT_DROPOUT
    actual = {m["holdout_actual"] for m in holdout.values()}
    assert len(actual) == 1 and actual.pop() > 0
    for quality in holdout.values():
        assert np.isfinite(quality["holdout_mae"]) and quality["holdout_mae"] > 0
        assert quality["tracking_week78_actual"] > quality["holdout_actual"]
