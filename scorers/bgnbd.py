"""BG/NBD customer-base model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

While alive, a customer makes repeat purchases as a Poisson process with rate
``lambda ~ Gamma(r, alpha)``; right after each repeat purchase they drop out for good with
probability ``p ~ Beta(a, b)``. A customer is summarised by ``(x, t_x, T)``: ``x`` repeat
purchases, the last one at ``t_x``, observed until ``T``, all measured from their first purchase
in one time unit (the CDNOW figures use weeks).

Functions are pure and vectorised: arguments broadcast together; all-scalar arguments give a
``float`` (or ``None``), anything else a float64 array (``NaN`` where the scalar form says
``None``). Inputs must satisfy ``x >= 0`` and ``0 <= t_x <= T``; ``t_x`` is ignored when
``x == 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import expit

from crm_core.errors import ModelError
from scorers._special import (
    FloatArray,
    MleFit,
    alive_expected_count,
    all_scalars,
    bgnbd_log_likelihood_terms,
    bgnbd_log_terms,
    bgnbd_neg_ll_and_grad,
    broadcast_floats,
    check_customers,
    check_horizon,
    check_positive,
    check_weights,
    maximise_log_likelihood,
)

__all__ = [
    "BgNbdFit",
    "BgNbdParams",
    "bgnbd_log_likelihood",
    "expected_next_purchase_time",
    "expected_purchases",
    "fit_bgnbd",
    "p_alive",
    "p_alive_crossing_time",
]


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """BG/NBD parameters: purchase rate ``Gamma(r, alpha)``, dropout ``Beta(a, b)``."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        check_positive(self, ("r", "alpha", "a", "b"), "BG/NBD")


@dataclass(frozen=True, slots=True)
class BgNbdFit(MleFit[BgNbdParams]):
    """A BG/NBD maximum-likelihood fit (:class:`scorers._special.MleFit`)."""


@overload
def bgnbd_log_likelihood(params: BgNbdParams, x: float, t_x: float, T: float) -> float: ...
@overload
def bgnbd_log_likelihood(
    params: BgNbdParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray: ...
def bgnbd_log_likelihood(
    params: BgNbdParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> float | FloatArray:
    """Per-customer log-likelihood (FHL 2005 eq. 6), in log space throughout.

    >>> params = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> round(bgnbd_log_likelihood(params, 2, 30.43, 38.86), 4)
    -9.4586
    """
    p = params
    out = bgnbd_log_likelihood_terms(p.r, p.alpha, p.a, p.b, *check_customers(x, t_x, T))
    return float(out) if all_scalars(x, t_x, T) else out


def fit_bgnbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    modified: bool = False,
) -> BgNbdFit:
    """Fit by maximum likelihood (L-BFGS-B on log-parameters with the analytic gradient).

    ``weights`` counts how many customers share each ``(x, t_x, T)`` row (default 1 each);
    ``n_customers`` is their total. ``modified`` fits MBG/NBD instead (:mod:`scorers.mbgnbd`).

    >>> fit = fit_bgnbd(
    ...     x=[0, 0, 0, 1, 1, 2, 2, 3, 5, 9],
    ...     t_x=[0, 0, 0, 4, 31, 6, 36, 12, 37, 38],
    ...     T=[39, 36, 30, 39, 39, 39, 39, 39, 39, 39],
    ...     weights=[40, 30, 20, 8, 8, 5, 5, 4, 2, 1],
    ... )
    >>> fit.converged, fit.n_customers, round(fit.params.r, 3)
    (True, 123, 0.152)
    """
    xs, txs, ts = check_customers(x, t_x, T)
    w = check_weights(weights, xs)
    xs, txs, ts, w = (v.ravel() for v in (xs, txs, ts, w))
    if not float(w @ xs) > 0:
        raise ModelError("BG/NBD needs at least one customer with a repeat purchase to fit.")
    # Start from r = 1 with the pooled repeat rate, and a flat Beta(1, 1) dropout prior.
    start = np.log(np.array([1.0, float(w @ ts) / float(w @ xs), 1.0, 1.0]))
    best = maximise_log_likelihood(
        lambda th: bgnbd_neg_ll_and_grad(th, xs, txs, ts, w, modified=modified),
        start,
        point_mass_pairs=((0, 1), (2, 3)),  # gamma(r, alpha) purchase rates, beta(a, b) dropout
    )
    return BgNbdFit.of(BgNbdParams(*best.values), best, round(float(w.sum())))


def _p_alive(p: BgNbdParams, x: FloatArray, t_x: FloatArray, big_t: FloatArray) -> FloatArray:
    c2, c3 = bgnbd_log_terms(p.r, p.alpha, p.a, p.b, x, t_x, big_t)
    return np.asarray(expit(c2 - c3), dtype=np.float64)


@overload
def p_alive(params: BgNbdParams, x: float, t_x: float, T: float) -> float: ...
@overload
def p_alive(
    params: BgNbdParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray: ...
def p_alive(
    params: BgNbdParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> float | FloatArray:
    """Probability the customer is still alive at ``T`` (FHL 2005 eq. 11 / Fader et al. note).

    ``1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))``. In BG/NBD a customer can only
    drop out right after a repeat purchase, so with ``x == 0`` P(alive) is exactly 1 however
    long they have been silent (use :func:`expected_purchases` to rank such customers).

    >>> params = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> round(p_alive(params, 2, 30.43, 38.86), 4), p_alive(params, 0, 0.0, 38.86)
    (0.7266, 1.0)
    """
    out = _p_alive(params, *check_customers(x, t_x, T))
    return float(out) if all_scalars(x, t_x, T) else out


def _expected(
    p: BgNbdParams, t: FloatArray, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    alive = alive_expected_count(p.r, p.alpha, p.a, p.b, t, x, big_t)
    return np.asarray(_p_alive(p, x, t_x, big_t) * alive, dtype=np.float64)


@overload
def expected_purchases(params: BgNbdParams, t: float, x: float, t_x: float, T: float) -> float: ...
@overload
def expected_purchases(
    params: BgNbdParams,
    t: npt.ArrayLike,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray: ...
def expected_purchases(
    params: BgNbdParams,
    t: npt.ArrayLike,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> float | FloatArray:
    """Expected number of purchases in ``(T, T+t]`` given ``(x, t_x, T)`` (FHL 2005 eq. 10).

    >>> params = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> round(expected_purchases(params, 39.0, 2, 30.43, 38.86), 4)
    1.226
    """
    out = _expected(params, *check_horizon(t, x, t_x, T))
    return float(out) if all_scalars(t, x, t_x, T) else out


def _next_purchase_time(p: BgNbdParams, x: float, t_x: float, big_t: float, cap: float) -> float:
    args = [np.array([v]) for v in (x, t_x, big_t)]

    def gap(t: float) -> float:
        return float(_expected(p, np.array([t]), *args)[0]) - 1.0

    if p.a > 1.0 and float(_p_alive(p, *args)[0]) * (p.a + p.b + x - 1.0) / (p.a - 1.0) <= 1.0:
        return np.nan  # the expected count converges to a limit <= 1
    hi = 1.0
    while gap(hi) < 0.0:
        if hi >= cap:
            return np.nan
        hi = min(hi * 4.0, cap)
    return float(brentq(gap, 0.0, hi, xtol=1e-300, rtol=1e-13))


@overload
def expected_next_purchase_time(
    params: BgNbdParams,
    x: float,
    t_x: float,
    T: float,
    *,
    max_horizon: float = ...,
) -> float | None: ...
@overload
def expected_next_purchase_time(
    params: BgNbdParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    max_horizon: float = ...,
) -> FloatArray: ...
def expected_next_purchase_time(
    params: BgNbdParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    max_horizon: float = 1e6,
) -> float | FloatArray | None:
    """Time ``t`` after ``T`` at which ``expected_purchases(t, ...)`` reaches 1.

    ``None`` (``NaN`` in arrays) when it never does: for ``a > 1`` the expected count tends to
    ``P(alive) (a+b+x-1)/(a-1)``, which may be <= 1; for ``a <= 1`` it grows without bound but
    possibly so slowly that it only reaches 1 after ``max_horizon``.

    >>> params = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> round(expected_next_purchase_time(params, 2, 30.43, 38.86), 2)
    30.79
    """
    xs, txs, ts = (v.ravel() for v in check_customers(x, t_x, T))
    shape = np.broadcast_shapes(np.shape(x), np.shape(t_x), np.shape(T))
    times = [
        _next_purchase_time(params, *row, max_horizon) for row in zip(xs, txs, ts, strict=True)
    ]
    out = np.array(times, dtype=np.float64).reshape(shape)
    if all_scalars(x, t_x, T):
        return None if np.isnan(out) else float(out)
    return out


@overload
def p_alive_crossing_time(
    params: BgNbdParams, x: float, t_x: float, threshold: float
) -> float | None: ...
@overload
def p_alive_crossing_time(
    params: BgNbdParams, x: npt.ArrayLike, t_x: npt.ArrayLike, threshold: npt.ArrayLike
) -> FloatArray: ...
def p_alive_crossing_time(
    params: BgNbdParams, x: npt.ArrayLike, t_x: npt.ArrayLike, threshold: npt.ArrayLike
) -> float | FloatArray | None:
    """The ``T`` (time since first purchase) at which P(alive) drops to ``threshold``.

    Assumes no further purchase, so a timer can be set for it instead of polling. P(alive) is
    monotone in ``T``, so ``p_alive(T) == threshold`` is solved in closed form rather than by a
    root finder: ``T = t_x + (alpha+t_x) expm1(s)`` with
    ``s = (log((1-threshold)/threshold) - log(a/(b+x-1))) / (r+x)``. If P(alive) is already
    below the threshold at ``T = t_x`` the answer is ``t_x``. ``None`` (``NaN`` in arrays) for
    ``x == 0`` (P(alive) stays 1) and when the crossing is beyond float range.

    >>> params = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> crossing = p_alive_crossing_time(params, 2, 30.43, 0.5)
    >>> round(crossing, 2), round(p_alive(params, 2, 30.43, crossing), 6)
    (62.49, 0.5)
    """
    xs, txs, th = broadcast_floats(x, t_x, threshold)
    if np.any(~((th > 0) & (th < 1))):
        raise ModelError("threshold must be strictly between 0 and 1.")
    xs, txs = check_customers(xs, txs, np.maximum(txs, 0.0))[:2]
    p = params
    repeat = xs > 0
    b_x1 = p.b + np.where(repeat, xs - 1.0, 0.0)
    s = (np.log((1.0 - th) / th) - np.log(p.a / b_x1)) / (p.r + xs)
    with np.errstate(over="ignore", invalid="ignore"):
        crossing = txs + (p.alpha + txs) * np.expm1(np.maximum(s, 0.0))
    out = np.where(repeat & np.isfinite(crossing), crossing, np.nan)
    if all_scalars(x, t_x, threshold):
        return None if np.isnan(out) else float(out)
    return np.asarray(out, dtype=np.float64)
