"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; lifetimes' formulation).

A customer's transaction values are ``Gamma(p, nu)`` with a customer-specific scale
``nu ~ Gamma(q, v)`` (the paper's ``gamma`` is ``v`` here), independent of the purchase process.
Only customers with repeat transactions (``x > 0``) carry information: the model is fitted on
their count ``x`` and mean value ``m`` of those ``x`` transactions. Values are plain ``float``
money in one currency unit, aggregated in float inside the scorer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, gammaln

from crm_core.errors import ModelError
from scorers._special import (
    FloatArray,
    all_scalars,
    broadcast_floats,
    check_weights,
    maximise_log_likelihood,
)

__all__ = [
    "GammaGammaFit",
    "GammaGammaParams",
    "expected_average_value",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
]


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: shape ``p`` of a transaction value, ``Gamma(q, v)`` scale prior."""

    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        for name in ("p", "q", "v"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ModelError(f"Gamma-Gamma parameter {name}={value!r} must be finite and > 0.")


@dataclass(frozen=True, slots=True)
class GammaGammaFit:
    """A maximum-likelihood fit on the ``n_customers`` customers with ``x > 0``."""

    params: GammaGammaParams
    log_likelihood: float
    n_customers: int
    iterations: int
    converged: bool


def _inputs(x: npt.ArrayLike, mean_value: npt.ArrayLike) -> list[FloatArray]:
    xs, ms = broadcast_floats(x, mean_value)
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ms))) or np.any(xs < 0):
        raise ModelError("x must be finite and >= 0, and mean_value finite.")
    if np.any(ms[xs > 0] <= 0):
        raise ModelError("mean_value must be > 0 for customers with x > 0 (drop zero spends).")
    return [xs, ms]


def _log_likelihood(g: GammaGammaParams, x: FloatArray, m: FloatArray) -> FloatArray:
    px = g.p * x
    out = gammaln(px + g.q) - gammaln(px) - gammaln(g.q) + g.q * np.log(g.v)
    out = out + (px - 1.0) * np.log(m) + px * np.log(x) - (px + g.q) * np.log(x * m + g.v)
    return np.asarray(out, dtype=np.float64)


@overload
def gamma_gamma_log_likelihood(params: GammaGammaParams, x: float, mean_value: float) -> float: ...
@overload
def gamma_gamma_log_likelihood(
    params: GammaGammaParams, x: npt.ArrayLike, mean_value: npt.ArrayLike
) -> FloatArray: ...
def gamma_gamma_log_likelihood(
    params: GammaGammaParams, x: npt.ArrayLike, mean_value: npt.ArrayLike
) -> float | FloatArray:
    """Log-density of the mean ``m`` of ``x > 0`` transaction values (lifetimes' formulation).

    >>> params = GammaGammaParams(p=6.25, q=3.74, v=15.44)
    >>> round(gamma_gamma_log_likelihood(params, 2, 22.345), 4)
    -3.5512
    """
    xs, ms = _inputs(x, mean_value)
    if np.any(xs <= 0):
        raise ModelError("the Gamma-Gamma likelihood is defined for customers with x > 0 only.")
    out = _log_likelihood(params, xs, ms)
    return float(out) if all_scalars(x, mean_value) else out


def _neg_ll_and_grad(
    theta: FloatArray, x: FloatArray, m: FloatArray, w: FloatArray
) -> tuple[float, FloatArray]:
    p, q, v = (float(t) for t in np.exp(theta))
    ll = _log_likelihood(GammaGammaParams(p, q, v), x, m)
    px = p * x
    log_xm_v = np.log(x * m + v)
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_xm_v)
    d_q = digamma(px + q) - digamma(q) + np.log(v) - log_xm_v
    d_v = q / v - (px + q) / (x * m + v)
    grad = np.array([w @ d_p * p, w @ d_q * q, w @ d_v * v])
    return -float(w @ ll), -grad


def fit_gamma_gamma(
    x: npt.ArrayLike, mean_value: npt.ArrayLike, *, weights: npt.ArrayLike | None = None
) -> GammaGammaFit:
    """Fit by maximum likelihood on the customers with ``x > 0`` (others are skipped).

    >>> fit = fit_gamma_gamma([2, 1, 0, 7, 3, 1, 4], [22.3, 11.8, 0.0, 73.7, 19.0, 40.0, 25.5])
    >>> fit.converged, fit.n_customers
    (True, 6)
    """
    xs, ms = _inputs(x, mean_value)
    w = check_weights(weights, xs)
    keep = (xs > 0) & (w > 0)
    xs, ms, w = xs[keep], ms[keep], w[keep]
    if xs.size < 2:
        raise ModelError("Gamma-Gamma needs at least two customers with repeat purchases.")
    # Start with q = 2 (finite mean), p = 1, and v matching the pooled mean spend.
    pooled = float(w @ (xs * ms)) / float(w @ xs)
    start = np.log(np.array([1.0, 2.0, pooled]))
    best = maximise_log_likelihood(lambda th: _neg_ll_and_grad(th, xs, ms, w), start)
    return GammaGammaFit(
        params=GammaGammaParams(*best.values),
        log_likelihood=best.log_likelihood,
        n_customers=round(float(w.sum())),
        iterations=best.iterations,
        converged=best.converged,
    )


@overload
def expected_average_value(params: GammaGammaParams, x: float, mean_value: float) -> float: ...
@overload
def expected_average_value(
    params: GammaGammaParams, x: npt.ArrayLike, mean_value: npt.ArrayLike
) -> FloatArray: ...
def expected_average_value(
    params: GammaGammaParams, x: npt.ArrayLike, mean_value: npt.ArrayLike
) -> float | FloatArray:
    """Posterior mean transaction value ``p (v + x m) / (p x + q - 1)``.

    A weighted average of the population mean ``p v / (q - 1)`` and the customer's own mean
    ``m``, with weight ``p x / (p x + q - 1)`` on ``m``; for ``x == 0`` it is the population
    mean (``mean_value`` is ignored). Raises :class:`ModelError` where the mean does not exist
    (``p x + q <= 1``, e.g. ``x == 0`` with ``q <= 1``).

    >>> params = GammaGammaParams(p=6.25, q=3.74, v=15.44)
    >>> round(expected_average_value(params, 2, 22.345), 2)
    24.66
    >>> round(expected_average_value(params, 0, 0.0), 2)  # population mean p v / (q - 1)
    35.22
    """
    xs, ms = _inputs(x, mean_value)
    g = params
    denominator = g.p * xs + g.q - 1.0
    if np.any(denominator <= 0):
        raise ModelError(f"q={g.q:.4g} <= 1: the population mean spend is infinite; refit.")
    out = np.asarray(g.p * (g.v + xs * np.where(xs > 0, ms, 0.0)) / denominator, dtype=np.float64)
    return float(out) if all_scalars(x, mean_value) else out
