"""Pareto/NBD customer-base model (Schmittlein, Morrison & Colombo 1987).

While alive, a customer purchases as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``;
their lifetime is exponential with rate ``mu ~ Gamma(s, beta)``, so they can drop out at any
time, including before a first repeat purchase: P(alive) of a one-time buyer falls with
silence. Expressions follow Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and
Related Expressions", computed in log space. Summary ``(x, t_x, T)`` and vectorised conventions
as in :mod:`scorers.bgnbd`.

The likelihood needs Gauss's hypergeometric function for every customer and has no cheap
analytic gradient here (central differences), so a fit costs ~10x a BG/NBD fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import expit, gammaln, hyp2f1

from crm_core.errors import ModelError
from scorers._special import (
    FloatArray,
    MleFit,
    check_customers,
    check_horizon,
    check_positive,
    check_weights,
    maximise_log_likelihood,
)

__all__ = [
    "ParetoNbdFit",
    "ParetoNbdParams",
    "fit_pareto_nbd",
    "pareto_nbd_expected_purchases",
    "pareto_nbd_log_likelihood",
    "pareto_nbd_p_alive",
    "pareto_nbd_p_alive_crossing_time",
]

_STEP = 1e-6  # central-difference step in log-parameters
_INFEASIBLE = 1e30  # the negative log-likelihood the optimiser sees where it is undefined


@dataclass(frozen=True, slots=True)
class ParetoNbdParams:
    """Purchase rate ``Gamma(r, alpha)``, dropout rate ``Gamma(s, beta)``."""

    r: float
    alpha: float
    s: float
    beta: float

    def __post_init__(self) -> None:
        check_positive(self, ("r", "alpha", "s", "beta"), "Pareto/NBD")


@dataclass(frozen=True, slots=True)
class ParetoNbdFit(MleFit[ParetoNbdParams]):
    """A Pareto/NBD maximum-likelihood fit (:class:`scorers._special.MleFit`)."""


def _log_terms(
    p: ParetoNbdParams, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Log-weights of 'alive at T' and 'died in (t_x, T]' (``-inf`` where ``t_x == T``)."""
    r, alpha, s, beta = p.r, p.alpha, p.s, p.beta
    k = r + s + x
    alive = -(r + x) * np.log(alpha + big_t) - s * np.log(beta + big_t)
    # The integral over the death time, as a 2F1 whose argument is in [0, 1).
    shift = max(alpha, beta)
    upper = np.full_like(x, s + 1.0) if alpha >= beta else r + x
    gap = abs(alpha - beta)
    at_last = np.log(hyp2f1(k, upper, k + 1.0, gap / (shift + t_x))) - k * np.log(shift + t_x)
    at_end = np.log(hyp2f1(k, upper, k + 1.0, gap / (shift + big_t))) - k * np.log(shift + big_t)
    with np.errstate(divide="ignore"):
        died = np.log(s / k) + at_last + np.log(-np.expm1(np.minimum(at_end - at_last, 0.0)))
    return np.asarray(alive, dtype=np.float64), np.asarray(died, dtype=np.float64)


def _log_likelihood(
    p: ParetoNbdParams, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    # Far from the data (e.g. s and beta in the hundreds, where the 2F1 overflows) the terms can
    # come out undefined: such a point is infeasible (-inf), so a fit backs off or is rejected.
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        alive, died = _log_terms(p, x, t_x, big_t)
        head = gammaln(p.r + x) - gammaln(p.r) + p.r * np.log(p.alpha) + p.s * np.log(p.beta)
        log_likelihood = head + np.logaddexp(alive, died)
    return np.asarray(np.where(np.isnan(log_likelihood), -np.inf, log_likelihood), dtype=np.float64)


def pareto_nbd_log_likelihood(
    params: ParetoNbdParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> FloatArray:
    """Per-customer log-likelihood (an array, whatever the arguments' shapes).

    >>> params = ParetoNbdParams(r=0.553, alpha=10.578, s=0.606, beta=11.669)
    >>> round(float(pareto_nbd_log_likelihood(params, 2, 30.43, 38.86)), 4)
    -9.5543
    """
    return _log_likelihood(params, *check_customers(x, t_x, T))


def fit_pareto_nbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
) -> ParetoNbdFit:
    """Fit by maximum likelihood (L-BFGS-B on log-parameters, central-difference gradient)."""
    xs, txs, ts = check_customers(x, t_x, T)
    w = check_weights(weights, xs)
    xs, txs, ts, w = (v.ravel() for v in (xs, txs, ts, w))
    if not float(w @ xs) > 0:
        raise ModelError("Pareto/NBD needs at least one customer with a repeat purchase to fit.")

    def neg_ll(theta: FloatArray) -> float:
        with np.errstate(invalid="ignore"):
            value = -float(w @ _log_likelihood(ParetoNbdParams(*np.exp(theta)), xs, txs, ts))
        return value if np.isfinite(value) else _INFEASIBLE

    def neg_ll_and_grad(theta: FloatArray) -> tuple[float, FloatArray]:
        steps = np.eye(len(theta)) * _STEP
        grad = np.array([(neg_ll(theta + e) - neg_ll(theta - e)) / (2 * _STEP) for e in steps])
        return neg_ll(theta), grad

    start = np.log(np.array([1.0, float(w @ ts) / float(w @ xs), 1.0, float(w @ ts) / len(ts)]))
    best = maximise_log_likelihood(neg_ll_and_grad, start, point_mass_pairs=((0, 1), (2, 3)))
    return ParetoNbdFit.of(ParetoNbdParams(*best.values), best, round(float(w.sum())))


def pareto_nbd_p_alive(
    params: ParetoNbdParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> FloatArray:
    """Probability the customer is alive at ``T`` (an array); falls with silence for every
    ``x``, ``x == 0`` included.

    >>> params = ParetoNbdParams(r=0.553, alpha=10.578, s=0.606, beta=11.669)
    >>> [round(float(pareto_nbd_p_alive(params, 0, 0.0, T)), 3) for T in (1.0, 10.0, 38.0)]
    [0.95, 0.643, 0.3]
    """
    alive, died = _log_terms(params, *check_customers(x, t_x, T))
    return np.asarray(expit(alive - died), dtype=np.float64)


def pareto_nbd_expected_purchases(
    params: ParetoNbdParams,
    t: npt.ArrayLike,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray:
    """Expected purchases in ``(T, T+t]`` (an array): P(alive) times
    ``(r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)]`` (its limit
    ``log((beta+T+t)/(beta+T))`` at ``s == 1``).

    >>> params = ParetoNbdParams(r=0.553, alpha=10.578, s=0.606, beta=11.669)
    >>> round(float(pareto_nbd_expected_purchases(params, 39.0, 2, 30.43, 38.86)), 4)
    1.4551
    """
    ts, xs, _, big_t = check_horizon(t, x, t_x, T)
    p = params
    log_growth = np.log1p(ts / (p.beta + big_t))
    if abs(p.s - 1.0) < 1e-9:
        spread = log_growth
    else:
        spread = -np.expm1(-(p.s - 1.0) * log_growth) / (p.s - 1.0)
    rate = (p.r + xs) * (p.beta + big_t) / (p.alpha + big_t)
    # P(alive) does not depend on t: its two 2F1 per customer are evaluated once, on (x, t_x,
    # T) as given, not once per horizon after broadcasting (the scorer asks for 14 horizons).
    alive, died = _log_terms(p, *check_customers(x, t_x, T))
    return np.asarray(expit(alive - died) * rate * spread, dtype=np.float64)


def pareto_nbd_p_alive_crossing_time(
    params: ParetoNbdParams, x: float, t_x: float, threshold: float, *, cap: float = 1e5
) -> float | None:
    """The ``T`` at which P(alive) falls to ``threshold`` with no further purchase (root
    finding: no closed form); ``t_x`` if already below, ``None`` when not before ``cap``.

    Scalar arithmetic on the log-odds of having died, whose only ``T``-dependent special
    function is one 2F1 (~50 us a crossing: the timers call it per high-value customer).

    >>> params = ParetoNbdParams(r=0.553, alpha=10.578, s=0.606, beta=11.669)
    >>> at = pareto_nbd_p_alive_crossing_time(params, 0, 0.0, 0.6)
    >>> round(at, 2), round(float(pareto_nbd_p_alive(params, 0, 0.0, at)), 6)
    (11.89, 0.6)
    """
    if not 0 < threshold < 1:
        raise ModelError("threshold must be strictly between 0 and 1.")
    p = params
    k = p.r + p.s + x
    shift, gap = max(p.alpha, p.beta), abs(p.alpha - p.beta)
    upper = p.s + 1.0 if p.alpha >= p.beta else p.r + x
    at_last = math.log(float(hyp2f1(k, upper, k + 1.0, gap / (shift + t_x)))) - k * math.log(
        shift + t_x
    )
    target = math.log((1.0 - threshold) / threshold)

    def log_odds_dead(big_t: float) -> float:  # log((1 - P(alive)) / P(alive)) - target
        at_end = math.log(float(hyp2f1(k, upper, k + 1.0, gap / (shift + big_t))))
        at_end -= k * math.log(shift + big_t)
        if at_end >= at_last:
            return -math.inf
        died = math.log(p.s / k) + at_last + math.log(-math.expm1(at_end - at_last))
        alive = -(p.r + x) * math.log(p.alpha + big_t) - p.s * math.log(p.beta + big_t)
        return died - alive - target

    if log_odds_dead(t_x) >= 0:
        return t_x
    hi = t_x + 1.0
    while log_odds_dead(hi) < 0:
        if hi >= cap:
            return None
        hi = min(cap, t_x + (hi - t_x) * 4.0)
    return float(brentq(log_odds_dead, t_x, hi, xtol=1e-7, rtol=1e-12))
