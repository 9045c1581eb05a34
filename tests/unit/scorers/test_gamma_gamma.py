"""Gamma-Gamma spend model: published CDNOW figures, properties, simulation oracles, contracts."""

from __future__ import annotations

import doctest
import itertools
import pickle

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scorers.gamma_gamma
from crm_core.errors import ModelError
from crm_score.datasets import cdnow_summary, load_cdnow_sample
from scorers.gamma_gamma import (
    GammaGammaFit,
    GammaGammaParams,
    _neg_ll_and_grad,
    expected_average_value,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
)
from tests.paths import CDNOW_SAMPLE

FloatArray = npt.NDArray[np.float64]
PUBLISHED = GammaGammaParams(p=6.25, q=3.74, v=15.44)


@pytest.fixture(scope="module")
def repeat_buyers() -> tuple[FloatArray, FloatArray]:
    s = cdnow_summary(load_cdnow_sample(CDNOW_SAMPLE))
    s = s[s["x"] > 0]
    return s["x"].to_numpy(dtype=np.float64), s["mean_value"].to_numpy(dtype=np.float64)


def test_fit_reproduces_the_published_cdnow_estimates(
    repeat_buyers: tuple[FloatArray, FloatArray],
) -> None:
    x, m = repeat_buyers
    assert x.size == 946
    fit = fit_gamma_gamma(x, m)
    assert fit.converged
    assert fit.n_customers == 946
    assert fit.params.p == pytest.approx(PUBLISHED.p, rel=0.01)
    assert fit.params.q == pytest.approx(PUBLISHED.q, rel=0.01)
    assert fit.params.v == pytest.approx(PUBLISHED.v, rel=0.01)
    # The published (rounded) parameters are within rounding of the optimum.
    at_published = gamma_gamma_log_likelihood(PUBLISHED, x, m).sum()
    assert 0.0 <= fit.log_likelihood - at_published < 0.01


def test_customers_without_repeat_purchases_are_skipped() -> None:
    s = cdnow_summary(load_cdnow_sample(CDNOW_SAMPLE))
    everyone = fit_gamma_gamma(s["x"].to_numpy(), s["mean_value"].to_numpy())
    assert everyone.n_customers == 946
    assert everyone.params.p == pytest.approx(PUBLISHED.p, rel=0.01)


def test_analytic_gradient_matches_finite_differences(
    repeat_buyers: tuple[FloatArray, FloatArray],
) -> None:
    x, m = repeat_buyers
    w = np.ones_like(x)
    for theta in (np.log([6.25, 3.74, 15.44]), np.array([0.1, 1.5, 2.0])):
        _, grad = _neg_ll_and_grad(theta, x, m, w)
        for i in range(3):
            step = np.zeros(3)
            step[i] = 1e-6
            up, _ = _neg_ll_and_grad(theta + step, x, m, w)
            down, _ = _neg_ll_and_grad(theta - step, x, m, w)
            assert grad[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-4)


def test_expected_average_value_is_a_credibility_weighted_mean() -> None:
    population = PUBLISHED.p * PUBLISHED.v / (PUBLISHED.q - 1)
    assert expected_average_value(PUBLISHED, 0, 123.0) == pytest.approx(population)
    weight = PUBLISHED.p * 3 / (PUBLISHED.p * 3 + PUBLISHED.q - 1)
    want = (1 - weight) * population + weight * 50.0
    assert expected_average_value(PUBLISHED, 3, 50.0) == pytest.approx(want, rel=1e-12)


def test_vectorised_equals_scalar(repeat_buyers: tuple[FloatArray, FloatArray]) -> None:
    x, m = repeat_buyers[0][::37], repeat_buyers[1][::37]
    values = expected_average_value(PUBLISHED, x, m)
    ll = gamma_gamma_log_likelihood(PUBLISHED, x, m)
    for i, (xi, mi) in enumerate(zip(x.tolist(), m.tolist(), strict=True)):
        assert expected_average_value(PUBLISHED, xi, mi) == pytest.approx(values[i], rel=1e-14)
        assert gamma_gamma_log_likelihood(PUBLISHED, xi, mi) == pytest.approx(ll[i], rel=1e-14)


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        GammaGammaParams, p=st.floats(0.05, 50), q=st.floats(1.01, 50), v=st.floats(0.01, 1e4)
    ),
    st.integers(1, 10_000),
    st.floats(0.01, 1e5),
)
def test_expected_value_lies_between_own_mean_and_population_mean(
    params: GammaGammaParams, x: int, m: float
) -> None:
    population = params.p * params.v / (params.q - 1)
    value = expected_average_value(params, x, m)
    more_data = expected_average_value(params, x + 1, m)
    lo, hi = min(m, population), max(m, population)
    assert lo * (1 - 1e-12) <= value <= hi * (1 + 1e-12)
    assert abs(more_data - m) <= abs(value - m) * (1 + 1e-12) + 1e-12 * m  # more own mean
    assert np.isfinite(gamma_gamma_log_likelihood(params, x, m))


def test_pickle_round_trip() -> None:
    fit = GammaGammaFit(PUBLISHED, -4055.9, 946, 20, True)
    assert pickle.loads(pickle.dumps(fit)) == fit


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ModelError, match="must be finite and > 0"):
        GammaGammaParams(p=1.0, q=0.0, v=1.0)
    with pytest.raises(ModelError, match="mean_value must be > 0"):
        fit_gamma_gamma([1, 2, 3], [10.0, 0.0, 5.0])
    with pytest.raises(ModelError, match="at least two"):
        fit_gamma_gamma([0, 2, 0], [0.0, 10.0, 0.0])
    with pytest.raises(ModelError, match="x > 0"):
        gamma_gamma_log_likelihood(PUBLISHED, 0, 10.0)
    with pytest.raises(ModelError, match="infinite"):
        expected_average_value(GammaGammaParams(p=2.0, q=0.9, v=10.0), 0, 0.0)
    # With a repeat purchase the posterior mean exists even when q <= 1.
    assert np.isfinite(expected_average_value(GammaGammaParams(p=2.0, q=0.9, v=10.0), 1, 5.0))


def test_doctests() -> None:
    assert doctest.testmod(scorers.gamma_gamma, raise_on_error=True).attempted > 0


# --- simulation oracles ------------------------------------------------------------------------


def simulate(
    params: GammaGammaParams, n: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per customer: x >= 1 transactions, their mean value, and one fresh transaction value."""
    nu = rng.gamma(params.q, 1.0 / params.v, n)  # customer's rate; values ~ Gamma(p, rate nu)
    x = 1 + rng.poisson(2.0, n)
    # The sum of x Gamma(p, nu) values is Gamma(p x, nu).
    mean = rng.gamma(params.p * x, 1.0 / nu) / x
    fresh = rng.gamma(params.p, 1.0 / nu)
    return x.astype(np.float64), mean, fresh


def test_fit_on_simulated_data_beats_the_true_parameters() -> None:
    x, m, _ = simulate(PUBLISHED, 20_000, np.random.default_rng(11))
    fit = fit_gamma_gamma(x, m)
    truth = gamma_gamma_log_likelihood(PUBLISHED, x, m).sum()
    assert fit.converged
    assert 0.0 <= fit.log_likelihood - truth < 10.0  # 2 * gap ~ chi2(3) under the model
    assert fit.params.q == pytest.approx(PUBLISHED.q, rel=0.15)


def test_expected_value_is_the_conditional_mean_of_the_next_transaction() -> None:
    """E[fresh - expected | data] = 0, so it holds within any group defined by (x, m)."""
    x, m, fresh = simulate(PUBLISHED, 400_000, np.random.default_rng(12))
    residual = fresh - expected_average_value(PUBLISHED, x, m)
    edges = np.quantile(m, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    for count in (1, 2, 3, 4):
        for lo, hi in itertools.pairwise(edges):
            group = residual[(x == count) & (m >= lo) & (m <= hi)]
            assert group.size > 2000
            assert group.mean() == pytest.approx(0.0, abs=4 * group.std() / np.sqrt(group.size))
