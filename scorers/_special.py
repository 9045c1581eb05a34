"""Numerical kernels shared by the customer-base models (private).

Input checks, the BG/NBD log-likelihood with its gradient, BG/NBD's conditional expected count
and the log-parameter optimiser. Kernels take plain floats for parameters and float64 arrays
that are already broadcast; the public modules do the scalar/array dispatch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Self, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from crm_core.errors import ModelError

__all__ = [
    "FloatArray",
    "LogParamOptimum",
    "alive_expected_count",
    "all_scalars",
    "bgnbd_log_likelihood_terms",
    "bgnbd_log_terms",
    "bgnbd_neg_ll_and_grad",
    "broadcast_floats",
    "check_customers",
    "check_weights",
    "maximise_log_likelihood",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]

_SERIES_MAX_Z = 0.01  # below this, 2F1 - 1 is summed directly (no cancellation)
_SERIES_TERMS = 80
_NEAR_ONE = 1e-4  # half-width of the interpolation window around a == 1
_NEAR_POLE = 1e-6  # half-width of the interpolation window around a + b + x - 1 == 0
_LOG_BOUND = 30.0  # optimise log-parameters inside [-30, 30]: e^30 ~ 1e13
#: Both parameters of a mixing distribution past e^10 (~22,000): it is a point mass to within
#: a coefficient of variation of 1/sqrt(22,000) < 0.7 %.
_POINT_MASS_LOG = 10.0


def broadcast_floats(*values: npt.ArrayLike) -> list[FloatArray]:
    """Convert to float64 and broadcast to one shape."""
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    return [np.asarray(a, dtype=np.float64) for a in np.broadcast_arrays(*arrays)]


def all_scalars(*values: object) -> bool:
    """True when every value is a Python or NumPy scalar (then functions return a float)."""
    return all(np.isscalar(v) for v in values)


def check_customers(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> list[FloatArray]:
    """Broadcast ``(x, t_x, T)`` to float64 and check ``x >= 0``, ``0 <= t_x <= T``, finite."""
    xs, txs, ts = broadcast_floats(x, t_x, T)
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(txs)) and np.all(np.isfinite(ts))):
        raise ModelError("x, t_x and T must be finite.")
    if np.any(xs < 0) or np.any(txs < 0) or np.any(txs > ts):
        raise ModelError("need x >= 0 and 0 <= t_x <= T (time since first purchase).")
    return [xs, txs, ts]


def check_horizon(
    t: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> list[FloatArray]:
    """Broadcast ``(t, x, t_x, T)`` to float64 and check the horizon ``t`` (finite, >= 0) and
    the customers (:func:`check_customers`)."""
    ts, xs, txs, big_t = broadcast_floats(t, x, t_x, T)
    if not np.all(np.isfinite(ts)) or np.any(ts < 0):
        raise ModelError("the horizon t must be finite and >= 0.")
    return [ts, *check_customers(xs, txs, big_t)]


def check_positive(params: object, names: tuple[str, ...], model: str) -> None:
    """Raise :class:`ModelError` unless every parameter ``names`` of ``params`` is finite and
    > 0 (the parameter checks of the purchase models' dataclasses)."""
    for name in names:
        value = getattr(params, name)
        if not (np.isfinite(value) and value > 0):
            raise ModelError(f"{model} parameter {name}={value!r} must be finite and > 0; refit.")


def check_weights(weights: npt.ArrayLike | None, like: FloatArray) -> FloatArray:
    """Per-row customer counts broadcast to ``like`` (default 1 each); finite and >= 0."""
    w = np.ones_like(like) if weights is None else broadcast_floats(weights, like)[0]
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ModelError("weights must be finite and >= 0.")
    return w


def bgnbd_log_terms(
    r: float,
    alpha: float,
    a: float,
    b: float,
    x: FloatArray,
    t_x: FloatArray,
    big_t: FloatArray,
    *,
    modified: bool = False,
) -> tuple[FloatArray, FloatArray]:
    """BG/NBD log-weights of 'alive at T' (c2) and 'dropped out after the last purchase' (c3).

    BG/NBD: ``c3 = -inf`` where ``x == 0`` (nobody drops out before a repeat purchase).
    MBG/NBD (``modified``, Batislam et al. 2007) also lets a customer drop out right after the
    first purchase: ``x + 1`` dropout chances instead of ``x``, so ``b + x - 1`` becomes
    ``b + x`` and ``x == 0`` is no exception.
    """
    repeat = x >= 0 if modified else x > 0
    b_x1 = b + np.where(repeat, x - (0.0 if modified else 1.0), 0.0)  # only used where repeat
    c2 = -(r + x) * np.log(alpha + big_t)
    c3 = np.where(repeat, np.log(a / b_x1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return c2, c3


def bgnbd_log_likelihood_terms(
    r: float,
    alpha: float,
    a: float,
    b: float,
    x: FloatArray,
    t_x: FloatArray,
    big_t: FloatArray,
    *,
    modified: bool = False,
) -> FloatArray:
    """Per-customer BG/NBD log-likelihood (FHL 2005 eq. 6), or MBG/NBD's with ``modified``,
    with gammaln/betaln/logaddexp."""
    c2, c3 = bgnbd_log_terms(r, alpha, a, b, x, t_x, big_t, modified=modified)
    chances = x + 1.0 if modified else x
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + chances) - betaln(a, b)
    return np.asarray(head + np.logaddexp(c2, c3), dtype=np.float64)


def bgnbd_neg_ll_and_grad(
    theta: FloatArray,
    x: FloatArray,
    t_x: FloatArray,
    big_t: FloatArray,
    w: FloatArray,
    *,
    modified: bool = False,
) -> tuple[float, FloatArray]:
    """Weighted BG/NBD (or MBG/NBD) negative log-likelihood and its gradient in
    ``log(r, alpha, a, b)``."""
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    ll = bgnbd_log_likelihood_terms(r, alpha, a, b, x, t_x, big_t, modified=modified)
    c2, c3 = bgnbd_log_terms(r, alpha, a, b, x, t_x, big_t, modified=modified)
    w3 = expit(c3 - c2)  # posterior probability of having dropped out already
    w2 = 1.0 - w3
    n = x + 1.0 if modified else x  # dropout chances survived by a customer alive at T
    b_x1 = b + (x if modified else np.where(x > 0, x - 1.0, 0.0))
    d_r = digamma(r + x) - digamma(r) + np.log(alpha)
    d_r = d_r - w2 * np.log(alpha + big_t) - w3 * np.log(alpha + t_x)
    d_alpha = r / alpha - (r + x) * (w2 / (alpha + big_t) + w3 / (alpha + t_x))
    d_a = digamma(a + b) - digamma(a + b + n) + w3 / a
    d_b = digamma(b + n) - digamma(a + b + n) - digamma(b) + digamma(a + b) - w3 / b_x1
    grad = np.array([w @ d_r * r, w @ d_alpha * alpha, w @ d_a * a, w @ d_b * b])
    return -float(w @ ll), -grad


def _scipy_hyp2f1(big_a: FloatArray, big_b: FloatArray, c: FloatArray, z: FloatArray) -> FloatArray:
    """scipy's 2F1, stepping around its failures when ``c - A - B`` is an integer.

    For real ``z`` near 1 and an integer ``c - A - B`` (e.g. BG/NBD with ``r - a`` an integer)
    scipy 1.17 can return NaN/inf (scipy issue #8083 reports wrong values in that case). There
    the mean of the values at ``c -/+ delta`` is used, which is accurate to ``O(delta**2)``.
    """
    gap = c - big_a - big_b
    integer = np.abs(gap - np.round(gap)) <= 1e-12 * np.maximum(1.0, np.abs(gap))
    out = np.asarray(hyp2f1(big_a, big_b, np.where(integer, c + 0.5, c), z), dtype=np.float64)
    if np.any(integer):
        args = (big_a[integer], big_b[integer])
        delta = 1e-9 * np.maximum(1.0, np.abs(c[integer]))
        lo = hyp2f1(*args, c[integer] - delta, z[integer])
        hi = hyp2f1(*args, c[integer] + delta, z[integer])
        out[integer] = 0.5 * (lo + hi)
    return out


def _hyp2f1_minus_one(
    big_a: FloatArray, big_b: FloatArray, c: FloatArray, z: FloatArray
) -> FloatArray:
    """``2F1(A, B; c; z) - 1`` without cancellation for small ``z``."""
    out = np.empty_like(z)
    small = z <= _SERIES_MAX_Z
    large = ~small
    out[large] = _scipy_hyp2f1(big_a[large], big_b[large], c[large], z[large]) - 1.0
    if np.any(small):
        sa, sb, sc, sz = big_a[small], big_b[small], c[small], z[small]
        term = np.ones_like(sz)
        total = np.zeros_like(sz)
        for n in range(_SERIES_TERMS):
            term = term * (sa + n) * (sb + n) / ((sc + n) * (n + 1)) * sz
            total += term
            if np.all(np.abs(term) <= 1e-17 * np.abs(total)):
                break
        slow = np.abs(term) > 1e-15 * np.abs(total)  # huge A or B: leave it to scipy
        total[slow] = _scipy_hyp2f1(sa[slow], sb[slow], sc[slow], sz[slow]) - 1.0
        out[small] = total
    return out


def _alive_count_core(
    r: float, alpha: float, a: float, b: FloatArray, t: FloatArray, x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """``E[Y(t) | alive at T]`` for ``a != 1`` and ``a+b+x-1 != 0`` (Euler-transformed form).

    FHL (2005) eq. 10 has ``(1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)`` with ``z = t/(alpha+T+t)``,
    whose 2F1 diverges like ``(1-z)^(a-1-r-x)`` for large ``x``. Euler's transformation gives the
    same value as ``(1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``, which has small fixed upper
    parameters and stays accurate for ``x`` and ``T`` in the tens of thousands.
    """
    c = a + b + x - 1.0
    z = t / (alpha + big_t + t)
    log_1mz = -np.log1p(t / (alpha + big_t))
    f_minus_1 = _hyp2f1_minus_one(a + b - 1.0 - r, np.full_like(z, a - 1.0), c, z)
    # 1 - (1-z)^(a-1) * F, written so that nothing cancels when z is small.
    one_minus_g = -np.expm1((a - 1.0) * log_1mz) - np.exp((a - 1.0) * log_1mz) * f_minus_1
    return np.asarray(c / (a - 1.0) * one_minus_g, dtype=np.float64)


def _alive_count_a(
    r: float, alpha: float, a: float, b: float, t: FloatArray, x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """As :func:`_alive_count_core`; where ``c = a+b+x-1`` is within ``1e-6`` of the pole of
    2F1 at ``c == 0`` (only ``x == 0, a + b == 1``) it interpolates linearly in ``b``."""
    bs = np.full_like(t, b)
    c = a + bs + x - 1.0
    near = np.abs(c) < _NEAR_POLE
    out = _alive_count_core(r, alpha, a, np.where(near, b + 1.0, bs), t, x, big_t)
    if np.any(near):
        args = (t[near], x[near], big_t[near])
        lo = _alive_count_core(r, alpha, a, bs[near] - c[near] - _NEAR_POLE, *args)
        hi = _alive_count_core(r, alpha, a, bs[near] - c[near] + _NEAR_POLE, *args)
        out[near] = lo + (c[near] + _NEAR_POLE) / (2.0 * _NEAR_POLE) * (hi - lo)
    return out


def alive_expected_count(
    r: float, alpha: float, a: float, b: float, t: FloatArray, x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """Expected repeat purchases in ``(T, T+t]`` for a customer known to be alive at ``T``.

    Equals ``E_p[(1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p]`` with ``p ~ Beta(a, b+x)``. The
    closed form divides by ``a - 1``; within ``1e-4`` of ``a == 1`` the value is interpolated
    linearly between ``a = 1 -/+ 1e-4`` (it is smooth in ``a``; relative error below 1e-6). Likewise
    around the removable singularity at ``a + b + x == 1``.
    """
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        out = _alive_count_exact(r, alpha, a, b, t, x, big_t)
    failed = ~np.isfinite(out)
    if a + b >= _CONCENTRATED and np.any(failed):
        # Beta(a, b + x) is so concentrated that the closed form's terms overflow; its limit,
        # p fixed at the mean a / (a + b + x), is then accurate to O(1 / (a + b)).
        tf, xf, tbf = t[failed], x[failed], big_t[failed]
        p = a / (a + b + xf)
        out[failed] = -np.expm1((r + xf) * -np.log1p(p * tf / (alpha + tbf))) / p
    return out


#: From this a + b on, a failed closed form falls back to the fixed-p limit (error < 0.5%).
_CONCENTRATED = 100.0


def _alive_count_exact(
    r: float, alpha: float, a: float, b: float, t: FloatArray, x: FloatArray, big_t: FloatArray
) -> FloatArray:
    if abs(a - 1.0) >= _NEAR_ONE:
        return _alive_count_a(r, alpha, a, b, t, x, big_t)
    lo = _alive_count_a(r, alpha, 1.0 - _NEAR_ONE, b, t, x, big_t)
    hi = _alive_count_a(r, alpha, 1.0 + _NEAR_ONE, b, t, x, big_t)
    weight = (a - (1.0 - _NEAR_ONE)) / (2.0 * _NEAR_ONE)
    return np.asarray(lo + weight * (hi - lo), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class LogParamOptimum:
    """Result of :func:`maximise_log_likelihood`, on the natural (not log) scale."""

    values: tuple[float, ...]
    log_likelihood: float
    iterations: int
    converged: bool
    at_bound: bool = False


P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class MleFit(Generic[P]):
    """A maximum-likelihood fit: total log-likelihood at the optimum and optimiser diagnostics."""

    params: P
    log_likelihood: float
    n_customers: int
    iterations: int
    converged: bool
    #: A parameter ran off to 0 or infinity (the optimiser stopped on its bound).
    at_bound: bool = False

    @classmethod
    def of(cls, params: P, optimum: LogParamOptimum, n_customers: int) -> Self:
        """The fit of ``params`` at ``optimum`` (:func:`maximise_log_likelihood`)."""
        o = optimum
        return cls(params, o.log_likelihood, n_customers, o.iterations, o.converged, o.at_bound)


def maximise_log_likelihood(
    neg_ll_and_grad: Callable[[FloatArray], tuple[float, FloatArray]],
    start: FloatArray,
    point_mass_pairs: tuple[tuple[int, int], ...] = (),
) -> LogParamOptimum:
    """Maximise a log-likelihood over positive parameters by L-BFGS-B on their logarithms.

    ``neg_ll_and_grad`` takes the log-parameters and returns the negative log-likelihood and its
    gradient with respect to the log-parameters. A fit that ends on the log-parameter bounds
    (a parameter running off to 0 or infinity) is reported as not converged and ``at_bound``.

    ``point_mass_pairs`` names the index pairs that are one mixing distribution's two
    parameters (a gamma's shape and rate, a beta's a and b). Both running off to infinity
    together is that distribution becoming a point mass (every customer alike, at the finite
    ratio the pair keeps): a limit the model reaches, not a failed fit, so it is not
    ``at_bound``.
    """
    first_value, _ = neg_ll_and_grad(start)
    scale = max(abs(first_value), 1.0)

    def scaled(theta: FloatArray) -> tuple[float, FloatArray]:
        value, grad = neg_ll_and_grad(np.asarray(theta, dtype=np.float64))
        return value / scale, grad / scale

    result = minimize(
        scaled,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * len(start),
        options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9},
    )
    theta = np.asarray(result.x, dtype=np.float64)
    off = np.abs(theta) >= _LOG_BOUND - 1e-6
    for i, j in point_mass_pairs:
        if min(theta[i], theta[j]) > _POINT_MASS_LOG:
            off[i] = off[j] = False
    inside = not bool(off.any())
    finite = bool(np.isfinite(result.fun))
    return LogParamOptimum(
        values=tuple(float(v) for v in np.exp(theta)),
        log_likelihood=-float(result.fun) * scale,
        iterations=int(result.nit),
        converged=bool(result.success) and inside and finite,
        at_bound=not inside,
    )
