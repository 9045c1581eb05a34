"""MBG/NBD and Pareto/NBD against numerical integration of their individual-level models,
the MBG/NBD gradient against finite differences, crossing times and vectorisation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import gammaln

from scorers._special import bgnbd_neg_ll_and_grad
from scorers.bgnbd import BgNbdParams
from scorers.mbgnbd import (
    mbgnbd_expected_purchases,
    mbgnbd_log_likelihood,
    mbgnbd_p_alive,
)
from scorers.pareto_nbd import (
    ParetoNbdParams,
    pareto_nbd_expected_purchases,
    pareto_nbd_log_likelihood,
    pareto_nbd_p_alive,
)
from scorers.purchase_models import PurchaseModel

MBG = BgNbdParams(r=0.525, alpha=6.183, a=0.891, b=1.614)
PARETO = ParetoNbdParams(r=0.553, alpha=10.578, s=0.606, beta=11.669)
CUSTOMERS = [(0, 0.0, 5.0), (0, 0.0, 38.86), (2, 30.43, 38.86), (7, 12.0, 20.0)]


def _quad(f: Callable[[float], float], lo: float, hi: float) -> float:
    value, _ = integrate.quad(f, lo, hi, epsabs=0.0, epsrel=1e-11, limit=200)
    return float(value)


def _rate_mass(r: float, alpha: float, x: float, t: float) -> float:
    """E[lambda^x exp(-lambda t)] for lambda ~ Gamma(r, alpha) (the Poisson part, integrated
    over the rate in closed form; the dropout part is integrated numerically)."""
    return float(
        np.exp(gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + t))
    )


@pytest.mark.parametrize(("x", "t_x", "big_t"), CUSTOMERS)
def test_mbgnbd_matches_numerical_integration(x: float, t_x: float, big_t: float) -> None:
    """Individual level: alive after x + 1 dropout chances (the first right after the first
    purchase), or dropped out at the last one; p ~ Beta(a, b) integrated numerically."""
    h = stats.beta(MBG.a, MBG.b).pdf
    alive = _rate_mass(MBG.r, MBG.alpha, x, big_t) * _quad(
        lambda p: (1 - p) ** (x + 1) * h(p), 0, 1
    )
    dropped = _rate_mass(MBG.r, MBG.alpha, x, t_x) * _quad(lambda p: p * (1 - p) ** x * h(p), 0, 1)
    total = alive + dropped
    assert float(mbgnbd_log_likelihood(MBG, x, t_x, big_t)) == pytest.approx(np.log(total))
    assert mbgnbd_p_alive(MBG, x, t_x, big_t) == pytest.approx(alive / total, rel=1e-8)
    t, shape, rate = 13.0, MBG.r + x, MBG.alpha + big_t

    def count(p: float) -> float:  # E[(1 - exp(-lambda p t)) / p] over the rate's posterior
        return float((1 - p) ** (x + 1) * h(p) * -np.expm1(-shape * np.log1p(p * t / rate)) / p)

    expected = _rate_mass(MBG.r, MBG.alpha, x, big_t) * _quad(count, 0, 1) / total
    assert mbgnbd_expected_purchases(MBG, t, x, t_x, big_t) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize(("x", "t_x", "big_t"), CUSTOMERS)
def test_pareto_nbd_matches_numerical_integration(x: float, t_x: float, big_t: float) -> None:
    """Individual level: alive at T, or died at some tau in (t_x, T]; the rates integrated in
    closed form for each tau and tau numerically (no hypergeometric function)."""
    p = PARETO

    def survives(tau: float) -> float:  # E[exp(-mu tau)], mu ~ Gamma(s, beta)
        return float((p.beta / (p.beta + tau)) ** p.s)

    def dies_at(tau: float) -> float:  # E[mu exp(-mu tau)]
        return float(p.s / (p.beta + tau) * survives(tau))

    alive = _rate_mass(p.r, p.alpha, x, big_t) * survives(big_t)
    died = _quad(lambda tau: _rate_mass(p.r, p.alpha, x, tau) * dies_at(tau), t_x, big_t)
    total = alive + died
    assert float(pareto_nbd_log_likelihood(p, x, t_x, big_t)) == pytest.approx(
        np.log(total), rel=1e-9
    )
    assert float(pareto_nbd_p_alive(p, x, t_x, big_t)) == pytest.approx(alive / total, rel=1e-8)
    t = 13.0
    # Alive at T: lambda ~ Gamma(r+x, alpha+T) and mu ~ Gamma(s, beta+T), independent;
    # E[lambda (1 - exp(-mu t)) / mu] = E[lambda] * integral_0^t E[exp(-mu u)] du.
    lifetime = _quad(lambda u: ((p.beta + big_t) / (p.beta + big_t + u)) ** p.s, 0, t)
    expected = alive / total * (p.r + x) / (p.alpha + big_t) * lifetime
    assert float(pareto_nbd_expected_purchases(p, t, x, t_x, big_t)) == pytest.approx(
        expected, rel=1e-8
    )


def test_mbgnbd_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 8, 300).astype(np.float64)
    big_t = rng.uniform(5, 40, 300)
    t_x = np.where(x > 0, rng.uniform(0, 1, 300) * big_t, 0.0)
    w = np.ones_like(x)
    theta = np.log([MBG.r, MBG.alpha, MBG.a, MBG.b])
    _, grad = bgnbd_neg_ll_and_grad(theta, x, t_x, big_t, w, modified=True)
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-6
        up, _ = bgnbd_neg_ll_and_grad(theta + step, x, t_x, big_t, w, modified=True)
        down, _ = bgnbd_neg_ll_and_grad(theta - step, x, t_x, big_t, w, modified=True)
        assert grad[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-6)


MODELS = [
    PurchaseModel("mbgnbd", MBG, -1.0),
    PurchaseModel("pareto_nbd", PARETO, -1.0),
    PurchaseModel("bgnbd", BgNbdParams(0.243, 4.414, 0.793, 2.426), -1.0),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.kind)
@pytest.mark.parametrize(("x", "t_x"), [(0, 0.0), (3, 10.0)])
@pytest.mark.parametrize("threshold", [0.2, 0.5])
def test_crossing_is_where_p_alive_meets_the_threshold(
    model: PurchaseModel, x: int, t_x: float, threshold: float
) -> None:
    weeks = model.crossing_weeks(x, t_x, threshold)
    if model.kind == "bgnbd" and x == 0:
        assert weeks is None  # BG/NBD: a one-time buyer never drops out
        assert float(model.p_alive(x, t_x, 1e4)) == 1.0
        return
    assert weeks is not None and weeks >= t_x
    assert float(model.p_alive(x, t_x, weeks)) == pytest.approx(threshold, abs=1e-7)
    assert float(model.p_alive(x, t_x, weeks + 1.0)) < threshold


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.kind)
def test_vectorised_equals_scalar_and_round_trips(model: PurchaseModel) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, 50).astype(np.float64)
    big_t = rng.uniform(1, 60, 50)
    t_x = np.where(x > 0, rng.uniform(0, 1, 50) * big_t, 0.0)
    alive = model.p_alive(x, t_x, big_t)
    expected = model.expected_purchases(10.0, x, t_x, big_t)
    for i in range(50):
        assert alive[i] == pytest.approx(float(model.p_alive(x[i], t_x[i], big_t[i])), rel=1e-12)
        one = float(model.expected_purchases(10.0, x[i], t_x[i], big_t[i]))
        assert expected[i] == pytest.approx(one, rel=1e-12)
    assert PurchaseModel.from_dict(model.to_dict()) == model


def test_pareto_nbd_likelihood_is_minus_infinity_not_nan_where_its_2f1_breaks_down() -> None:
    """A population refresh once drove the fit to s ~ 300, beta ~ 9,000, where the 2F1 of a
    customer with t_x = 0 is undefined: that point is infeasible (-inf, no warning), so the
    optimiser backs off instead of reading NaN."""
    params = ParetoNbdParams(r=1.717, alpha=18.03, s=296.24, beta=9191.47)
    x = np.array([0.0, 0.0, 2.0, 9.0])
    t_x = np.array([0.0, 0.0, 9.8, 30.2])
    big_t = np.array([28.6, 8.8, 27.1, 36.2])
    log_likelihood = pareto_nbd_log_likelihood(params, x, t_x, big_t)
    assert not np.isnan(log_likelihood).any()
    assert np.isneginf(log_likelihood[:2]).all()
    assert np.isfinite(log_likelihood[2:]).all()
