"""MBG/NBD customer-base model (Batislam, Denizel & Filiztekin 2007).

BG/NBD with one change: a customer may also drop out right after the *first* purchase, not only
after each repeat purchase. So with ``x`` repeat purchases they have had ``x + 1`` chances to
drop out, and P(alive) of a customer without a repeat purchase falls with silence instead of
staying 1 (classic BG/NBD's blind spot for one-time buyers). Parameters are BG/NBD's
(:class:`~scorers.bgnbd.BgNbdParams`: ``r, alpha`` of the purchase rate, ``a, b`` of the dropout
probability); the summary ``(x, t_x, T)`` and the vectorised conventions are those of
:mod:`scorers.bgnbd`.

Every closed form is BG/NBD's with ``b + x - 1`` read as ``b + x``: P(alive) is
``1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))`` and the expected count of a live customer
is BG/NBD's with ``b + 1`` in place of ``b``.
"""

from __future__ import annotations

from typing import overload

import numpy as np
import numpy.typing as npt
from scipy.special import expit

from scorers._special import (
    FloatArray,
    alive_expected_count,
    all_scalars,
    bgnbd_log_likelihood_terms,
    bgnbd_log_terms,
    check_customers,
    check_horizon,
)
from scorers.bgnbd import BgNbdFit, BgNbdParams, fit_bgnbd

__all__ = [
    "fit_mbgnbd",
    "mbgnbd_expected_purchases",
    "mbgnbd_log_likelihood",
    "mbgnbd_p_alive",
]


def mbgnbd_log_likelihood(
    params: BgNbdParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> FloatArray:
    """Per-customer log-likelihood (an array, whatever the arguments' shapes).

    >>> params = BgNbdParams(r=0.525, alpha=6.183, a=0.891, b=1.614)
    >>> round(float(mbgnbd_log_likelihood(params, 0, 0.0, 38.86)), 4)
    -0.5398
    """
    p = params
    terms = bgnbd_log_likelihood_terms(
        p.r, p.alpha, p.a, p.b, *check_customers(x, t_x, T), modified=True
    )
    return np.asarray(terms, dtype=np.float64)


def fit_mbgnbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
) -> BgNbdFit:
    """Fit by maximum likelihood, as :func:`scorers.bgnbd.fit_bgnbd` does for BG/NBD."""
    return fit_bgnbd(x, t_x, T, weights=weights, modified=True)


def _p_alive(p: BgNbdParams, x: FloatArray, t_x: FloatArray, big_t: FloatArray) -> FloatArray:
    c2, c3 = bgnbd_log_terms(p.r, p.alpha, p.a, p.b, x, t_x, big_t, modified=True)
    return np.asarray(expit(c2 - c3), dtype=np.float64)


@overload
def mbgnbd_p_alive(params: BgNbdParams, x: float, t_x: float, T: float) -> float: ...
@overload
def mbgnbd_p_alive(
    params: BgNbdParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> FloatArray: ...
def mbgnbd_p_alive(
    params: BgNbdParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> float | FloatArray:
    """Probability the customer is alive at ``T``; below 1 for ``x == 0`` too, and falling
    as their silence grows.

    >>> params = BgNbdParams(r=0.525, alpha=6.183, a=0.891, b=1.614)
    >>> [round(mbgnbd_p_alive(params, 0, 0.0, T), 3) for T in (1.0, 10.0, 38.0)]
    [0.626, 0.522, 0.392]
    """
    out = _p_alive(params, *check_customers(x, t_x, T))
    return float(out) if all_scalars(x, t_x, T) else out


@overload
def mbgnbd_expected_purchases(
    params: BgNbdParams, t: float, x: float, t_x: float, T: float
) -> float: ...
@overload
def mbgnbd_expected_purchases(
    params: BgNbdParams,
    t: npt.ArrayLike,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray: ...
def mbgnbd_expected_purchases(
    params: BgNbdParams,
    t: npt.ArrayLike,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> float | FloatArray:
    """Expected number of purchases in ``(T, T+t]`` given ``(x, t_x, T)``.

    P(alive) times the expected count of a live customer, whose dropout probability has the
    posterior ``Beta(a, b + x + 1)`` (BG/NBD's count with ``b + 1``).

    >>> params = BgNbdParams(r=0.525, alpha=6.183, a=0.891, b=1.614)
    >>> round(mbgnbd_expected_purchases(params, 39.0, 2, 30.43, 38.86), 4)
    1.263
    """
    ts, xs, txs, big_t = check_horizon(t, x, t_x, T)
    p = params
    alive = alive_expected_count(p.r, p.alpha, p.a, p.b + 1.0, ts, xs, big_t)
    out = np.asarray(_p_alive(p, xs, txs, big_t) * alive, dtype=np.float64)
    return float(out) if all_scalars(t, x, t_x, T) else out
