"""BG/NBD: published CDNOW figures, properties, batch/Monte Carlo oracles, contracts."""

from __future__ import annotations

import doctest
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.special import betaln

import scorers.bgnbd
from crm_core.errors import ModelError
from crm_score.datasets import cdnow_summary, load_cdnow_sample
from scorers._special import alive_expected_count, bgnbd_neg_ll_and_grad, maximise_log_likelihood
from scorers.bgnbd import (
    BgNbdFit,
    BgNbdParams,
    bgnbd_log_likelihood,
    expected_next_purchase_time,
    expected_purchases,
    fit_bgnbd,
    p_alive,
    p_alive_crossing_time,
)
from tests.paths import CDNOW_SAMPLE

FloatArray = npt.NDArray[np.float64]
PUBLISHED = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PUBLISHED_LL = -9582.4


@dataclass(frozen=True)
class Summary:
    x: FloatArray
    t_x: FloatArray
    T: FloatArray


@pytest.fixture(scope="module")
def cdnow() -> Summary:
    s = cdnow_summary(load_cdnow_sample(CDNOW_SAMPLE))
    return Summary(
        x=s["x"].to_numpy(dtype=np.float64),
        t_x=s["t_x"].to_numpy(dtype=np.float64),
        T=s["T"].to_numpy(dtype=np.float64),
    )


# --- the CDNOW summary and the published fit -------------------------------------------------


def test_cdnow_summary_matches_the_published_calibration_data() -> None:
    s = cdnow_summary(load_cdnow_sample(CDNOW_SAMPLE))
    assert len(s) == 2357
    assert int((s["x"] > 0).sum()) == 946
    assert int(s["x"].sum()) == 2457  # repeat transactions in weeks 1-39 (regression value)
    # Customer 4 bought on 01-01, 01-18 and 08-02 in calibration (and 12-12, in the holdout).
    row = s.loc[4]
    assert row["x"] == 2
    assert row["t_x"] == pytest.approx(213 / 7)
    assert row["T"] == pytest.approx(272 / 7)
    assert row["mean_value"] == pytest.approx((29.73 + 14.96) / 2)


def test_fit_reproduces_the_published_cdnow_estimates(cdnow: Summary) -> None:
    fit = fit_bgnbd(cdnow.x, cdnow.t_x, cdnow.T)
    assert fit.converged
    assert fit.n_customers == 2357
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit.params, name) == pytest.approx(getattr(PUBLISHED, name), rel=0.01)
    assert fit.log_likelihood == pytest.approx(PUBLISHED_LL, rel=0.01)
    assert fit.log_likelihood == pytest.approx(PUBLISHED_LL, abs=0.1)  # much closer than 1%


def test_log_likelihood_at_the_published_parameters(cdnow: Summary) -> None:
    total = bgnbd_log_likelihood(PUBLISHED, cdnow.x, cdnow.t_x, cdnow.T).sum()
    assert total == pytest.approx(PUBLISHED_LL, abs=0.1)


def test_weights_are_customer_counts(cdnow: Summary) -> None:
    rows = np.column_stack([cdnow.x, cdnow.t_x, cdnow.T])
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    weighted = fit_bgnbd(unique[:, 0], unique[:, 1], unique[:, 2], weights=counts)
    plain = fit_bgnbd(cdnow.x, cdnow.t_x, cdnow.T)
    assert weighted.n_customers == plain.n_customers == 2357
    assert weighted.log_likelihood == pytest.approx(plain.log_likelihood, rel=1e-9)
    for name in ("r", "alpha", "a", "b"):
        got, want = getattr(weighted.params, name), getattr(plain.params, name)
        assert got == pytest.approx(want, rel=1e-4)


def test_analytic_gradient_matches_finite_differences(cdnow: Summary) -> None:
    w = np.ones_like(cdnow.x)
    for theta in (np.log([0.243, 4.414, 0.793, 2.426]), np.array([0.3, 1.0, -0.5, 2.0])):
        _, grad = bgnbd_neg_ll_and_grad(theta, cdnow.x, cdnow.t_x, cdnow.T, w)
        for i in range(4):
            step = np.zeros(4)
            step[i] = 1e-6
            up, _ = bgnbd_neg_ll_and_grad(theta + step, cdnow.x, cdnow.t_x, cdnow.T, w)
            down, _ = bgnbd_neg_ll_and_grad(theta - step, cdnow.x, cdnow.t_x, cdnow.T, w)
            assert grad[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-4)


# --- contracts ---------------------------------------------------------------------------------


def test_params_and_fits_pickle_round_trip() -> None:
    fit = BgNbdFit(PUBLISHED, -9582.4, 2357, 20, True)
    assert pickle.loads(pickle.dumps(fit)) == fit
    assert pickle.loads(pickle.dumps(PUBLISHED)) == PUBLISHED


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_parameters_are_refused(bad: float) -> None:
    with pytest.raises(ModelError, match="must be finite and > 0"):
        BgNbdParams(r=bad, alpha=1.0, a=1.0, b=1.0)


@pytest.mark.parametrize(
    ("x", "t_x", "T"), [(-1, 0, 5), (2, 6, 5), (1, -1, 5), (1, 1, float("nan"))]
)
def test_invalid_customers_are_refused(x: float, t_x: float, T: float) -> None:  # noqa: N803
    with pytest.raises(ModelError):
        p_alive(PUBLISHED, x, t_x, T)
    with pytest.raises(ModelError):
        bgnbd_log_likelihood(PUBLISHED, x, t_x, T)


def test_fit_needs_a_repeat_purchase() -> None:
    with pytest.raises(ModelError, match="repeat purchase"):
        fit_bgnbd([0, 0], [0, 0], [10, 20])


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1, 2.0])
def test_crossing_threshold_must_be_a_probability(threshold: float) -> None:
    with pytest.raises(ModelError, match="threshold"):
        p_alive_crossing_time(PUBLISHED, 2, 10.0, threshold)


def test_x_zero_is_alive_and_never_crosses() -> None:
    assert p_alive(PUBLISHED, 0, 0.0, 1e4) == 1.0
    assert p_alive_crossing_time(PUBLISHED, 0, 0.0, 0.5) is None


@pytest.mark.parametrize(
    ("x", "t_x", "T"),
    [(0, 0, 0), (0, 0, 1e4), (1, 0, 1e4), (1e4, 1e4, 1e4), (1e4, 1e-3, 1e4), (1e4, 1.0, 1.0)],
)
def test_extreme_customers_give_finite_scores(x: float, t_x: float, T: float) -> None:  # noqa: N803
    assert np.isfinite(bgnbd_log_likelihood(PUBLISHED, x, t_x, T))
    assert 0.0 <= p_alive(PUBLISHED, x, t_x, T) <= 1.0
    for t in (0.0, 1e-9, 1.0, 1e4):
        assert 0.0 <= expected_purchases(PUBLISHED, t, x, t_x, T) < np.inf
    assert expected_purchases(PUBLISHED, 0.0, x, t_x, T) == 0.0


def test_vectorised_equals_scalar(cdnow: Summary) -> None:
    idx = np.arange(0, 2357, 97)
    x, t_x, big_t = cdnow.x[idx], cdnow.t_x[idx], cdnow.T[idx]
    ll = bgnbd_log_likelihood(PUBLISHED, x, t_x, big_t)
    alive = p_alive(PUBLISHED, x, t_x, big_t)
    expected = expected_purchases(PUBLISHED, 39.0, x, t_x, big_t)
    nxt = expected_next_purchase_time(PUBLISHED, x, t_x, big_t)
    cross = p_alive_crossing_time(PUBLISHED, x, t_x, 0.3)
    assert isinstance(ll, np.ndarray)
    rows = zip(x.tolist(), t_x.tolist(), big_t.tolist(), strict=True)
    for i, (xi, ti, big_ti) in enumerate(rows):
        assert bgnbd_log_likelihood(PUBLISHED, xi, ti, big_ti) == pytest.approx(ll[i], rel=1e-14)
        assert p_alive(PUBLISHED, xi, ti, big_ti) == pytest.approx(alive[i], rel=1e-14)
        got = expected_purchases(PUBLISHED, 39.0, xi, ti, big_ti)
        assert got == pytest.approx(expected[i], rel=1e-14)
        scalar_next = expected_next_purchase_time(PUBLISHED, xi, ti, big_ti)
        assert (np.nan if scalar_next is None else scalar_next) == pytest.approx(
            nxt[i], nan_ok=True
        )
        scalar_cross = p_alive_crossing_time(PUBLISHED, xi, ti, 0.3)
        want = cross[i]
        assert (np.nan if scalar_cross is None else scalar_cross) == pytest.approx(
            want, nan_ok=True
        )
    grid = expected_purchases(PUBLISHED, np.array([[1.0], [10.0]]), x, t_x, big_t)
    assert grid.shape == (2, idx.size)


def test_doctests() -> None:
    assert doctest.testmod(scorers.bgnbd, raise_on_error=True).attempted > 0


# --- properties --------------------------------------------------------------------------------

params_st = st.builds(
    BgNbdParams,
    r=st.floats(0.01, 20.0),
    alpha=st.floats(0.01, 100.0),
    a=st.floats(0.05, 20.0),
    b=st.floats(0.05, 50.0),
)
count_st = st.integers(0, 10_000)
time_st = st.floats(0.0, 10_000.0)
frac_st = st.floats(0.0, 1.0)


@settings(max_examples=300, deadline=None)
@given(params_st, st.integers(1, 10_000), frac_st, time_st, st.floats(0.0, 10_000.0))
def test_p_alive_is_a_probability_decreasing_in_age(
    params: BgNbdParams, x: int, frac: float, big_t: float, more: float
) -> None:
    t_x = frac * big_t
    now, later = p_alive(params, x, t_x, big_t), p_alive(params, x, t_x, big_t + more)
    assert 0.0 <= later <= now <= 1.0
    assert np.isfinite(bgnbd_log_likelihood(params, x, t_x, big_t))


@settings(max_examples=300, deadline=None)
@given(params_st, count_st, frac_st, time_st, st.floats(0.0, 1e4), st.floats(0.0, 1e4))
def test_expected_purchases_is_non_negative_and_non_decreasing_in_t(
    params: BgNbdParams, x: int, frac: float, big_t: float, t: float, dt: float
) -> None:
    t_x = frac * big_t if x > 0 else 0.0
    low = expected_purchases(params, t, x, t_x, big_t)
    high = expected_purchases(params, t + dt, x, t_x, big_t)
    assert np.isfinite(low)
    assert np.isfinite(high)
    assert 0.0 <= low <= high * (1 + 1e-9) + 1e-12


@settings(max_examples=300, deadline=None)
@given(params_st, st.integers(1, 10_000), st.floats(0.0, 1e4), st.floats(0.01, 0.99))
def test_crossing_time_is_where_p_alive_meets_the_threshold(
    params: BgNbdParams, x: int, t_x: float, threshold: float
) -> None:
    crossing = p_alive_crossing_time(params, x, t_x, threshold)
    if crossing is None:  # beyond float range
        return
    assert crossing >= t_x
    at = p_alive(params, x, t_x, crossing)
    if crossing == t_x:  # already below at the last purchase
        assert at <= threshold + 1e-12
    else:
        assert at == pytest.approx(threshold, rel=1e-6)
        assert p_alive(params, x, t_x, crossing * (1 + 1e-6) + 1e-9) <= threshold


@settings(max_examples=100, deadline=None)
@given(params_st, st.integers(0, 1000), frac_st, st.floats(0.0, 1000.0))
def test_expected_next_purchase_time_is_where_the_count_reaches_one(
    params: BgNbdParams, x: int, frac: float, big_t: float
) -> None:
    t_x = frac * big_t if x > 0 else 0.0
    t = expected_next_purchase_time(params, x, t_x, big_t)
    if t is None:
        return
    assert expected_purchases(params, t, x, t_x, big_t) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("a", [0.793, 1.0, 1.00003, 2.5])
@pytest.mark.parametrize(("t", "x", "big_t"), [(0.5, 0, 39.0), (39.0, 2, 38.9), (500.0, 40, 3.0)])
def test_alive_expected_count_matches_numerical_integration(
    a: float, t: float, x: float, big_t: float
) -> None:
    """Oracle: E[(1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p] over p ~ Beta(a, b+x), by quad."""
    r, alpha, b = 0.243, 4.414, 2.426
    arrays = [np.array([v]) for v in (t, x, big_t)]
    got = alive_expected_count(r, alpha, a, b, *arrays)[0]

    def integrand(p: float) -> float:
        density = np.exp((a - 1) * np.log(p) + (b + x - 1) * np.log1p(-p) - betaln(a, b + x))
        return float(density * -np.expm1(-(r + x) * np.log1p(p * t / (alpha + big_t))) / p)

    want = sum(quad(integrand, lo, hi, limit=200)[0] for lo, hi in [(0, 0.01), (0.01, 1)])
    assert got == pytest.approx(want, rel=1e-6)


# --- Monte Carlo check of the conditional expectations ------------------------------------------


def simulate(
    params: BgNbdParams, n: int, holdout: float, rng: np.random.Generator
) -> dict[str, Any]:
    """Simulate BG/NBD customers over a calibration ``(0, T]`` and a holdout ``(T, T+holdout]``."""
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    drop = rng.beta(params.a, params.b, n)
    big_t = rng.uniform(26.0, 39.0, n)
    clock, x, t_x, future = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    alive_at_t = np.ones(n, dtype=bool)
    active = np.arange(n)
    while active.size:
        clock[active] += rng.exponential(1.0 / lam[active])
        active = active[clock[active] <= big_t[active] + holdout]
        in_cal = clock[active] <= big_t[active]
        x[active[in_cal]] += 1
        t_x[active[in_cal]] = clock[active[in_cal]]
        future[active[~in_cal]] += 1
        dies = rng.random(active.size) < drop[active]
        alive_at_t[active[dies & in_cal]] = False
        active = active[~dies]
    return {"x": x, "t_x": t_x, "T": big_t, "alive": alive_at_t, "future": future}


def test_conditional_expectations_match_a_simulation() -> None:
    rng = np.random.default_rng(20050401)
    sim = simulate(PUBLISHED, 200_000, 39.0, rng)
    x, t_x, big_t = sim["x"], sim["t_x"], sim["T"]
    alive = p_alive(PUBLISHED, x, t_x, big_t)
    expected = expected_purchases(PUBLISHED, 39.0, x, t_x, big_t)
    for lo, hi in [(0, 0), (1, 1), (2, 3), (4, 7), (8, 10_000)]:
        group = (x >= lo) & (x <= hi)
        n = int(group.sum())
        assert n > 3000
        simulated = sim["alive"][group].astype(float)
        tol = 4 * np.sqrt(alive[group].mean() * (1 - alive[group].mean()) / n) + 1e-9
        assert alive[group].mean() == pytest.approx(simulated.mean(), abs=tol)
        future = sim["future"][group]
        tol = 4 * future.std() / np.sqrt(n)
        assert expected[group].mean() == pytest.approx(future.mean(), abs=tol)


def test_fit_on_simulated_data_beats_the_true_parameters() -> None:
    rng = np.random.default_rng(7)
    sim = simulate(PUBLISHED, 20_000, 0.0, rng)
    fit = fit_bgnbd(sim["x"], sim["t_x"], sim["T"])
    truth = bgnbd_log_likelihood(PUBLISHED, sim["x"], sim["t_x"], sim["T"]).sum()
    assert fit.converged
    assert 0.0 <= fit.log_likelihood - truth < 15.0  # 2 * gap ~ chi2(4) under the model
    assert fit.params.r == pytest.approx(PUBLISHED.r, rel=0.15)
    assert fit.params.alpha == pytest.approx(PUBLISHED.alpha, rel=0.25)


def test_concentrated_dropout_prior_stays_finite_and_matches_its_limit() -> None:
    """A fit with huge a, b (no dropout heterogeneity) must still give finite expectations."""
    x = np.array([0.0, 1.0, 5.0, 40.0])
    t_x = np.array([0.0, 3.0, 20.0, 29.0])
    big_t = np.array([10.0, 20.0, 30.0, 30.0])
    for a, b in ((1e3, 7e3), (1e4, 7e4), (1e6, 7.4e6)):
        params = BgNbdParams(r=0.68, alpha=6.69, a=a, b=b)
        got = expected_purchases(params, 13.0, x, t_x, big_t)
        assert np.all(np.isfinite(got))
        p = a / (a + b + x)
        posterior_rate = ((6.69 + big_t) / (6.69 + big_t + p * 13.0)) ** (0.68 + x)
        limit = p_alive(params, x, t_x, big_t) * (1.0 - posterior_rate) / p
        np.testing.assert_allclose(got, limit, rtol=5e-3)


# --- the point-mass limits ---------------------------------------------------------------------


def _homogeneous_dropout(n: int, p: float, seed: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Customers of a BG/NBD whose dropout probability is ``p`` for everyone (Beta(a, b) with
    a, b -> infinity) and whose purchase rates are Gamma(2, 10 weeks)."""
    rng = np.random.default_rng(seed)
    xs, txs, ts = np.zeros(n), np.zeros(n), rng.uniform(30, 60, n)
    for i in range(n):
        rate, t = rng.gamma(2.0, 1 / 10.0), 0.0
        while True:
            t += rng.exponential(1 / rate)
            if t > ts[i]:
                break
            xs[i], txs[i] = xs[i] + 1, t
            if rng.random() < p:
                break
    return xs, txs, ts


def test_everyone_dropping_out_alike_is_a_fit_not_a_runaway() -> None:
    """With no spread in dropout the beta's a and b run off to infinity together: that is the
    model's own limit (dropout probability a / (a + b) for all), and the fit stands."""
    x, t_x, big_t = _homogeneous_dropout(300, 0.2, seed=2)
    fit = fit_bgnbd(x, t_x, big_t)
    p = fit.params
    assert not fit.at_bound
    assert p.a > 1e4 and p.b > 1e4  # off along the ridge a / (a + b) = const
    assert p.a / (p.a + p.b) == pytest.approx(0.2, abs=0.03)
    assert p.r == pytest.approx(2.0, rel=0.3) and p.alpha == pytest.approx(10.0, rel=0.3)
    alive = p_alive(p, x, t_x, big_t)
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1))
    limit = 1 / (1 + p.a / p.b * ((p.alpha + big_t) / (p.alpha + t_x)) ** (p.r + x))
    repeaters = x > 0
    assert alive[repeaters] == pytest.approx(limit[repeaters], rel=1e-4)


def test_a_pair_off_to_infinity_together_is_a_limit_and_anything_else_a_runaway() -> None:
    """A likelihood rising for ever along theta0 = theta1 + 1 (a mixing distribution turning
    into a point mass): at the bound, and only a named pair may stop there."""

    def ridge(theta: FloatArray) -> tuple[float, FloatArray]:
        gap = theta[0] - theta[1] - 1.0
        value = gap**2 - 0.1 * theta[0] + theta[2] ** 2
        return value, np.array([2 * gap - 0.1, -2 * gap, 2 * theta[2]])

    start = np.zeros(3)
    limit = maximise_log_likelihood(ridge, start, point_mass_pairs=((0, 1),))
    assert not limit.at_bound and limit.converged
    assert limit.values[0] > 1e12 and limit.values[0] / limit.values[1] == pytest.approx(np.e)
    assert maximise_log_likelihood(ridge, start).at_bound
    assert maximise_log_likelihood(ridge, start, point_mass_pairs=((1, 2),)).at_bound
    alone = fit_bgnbd([3, 2, 4, 1], [0, 0, 0, 0], [20, 30, 25, 40])  # every repeat on day 0
    assert alone.at_bound and not alone.converged
