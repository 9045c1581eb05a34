"""Customer lifetime value from BG/NBD (how often) and Gamma-Gamma (how much), as lifetimes does.

``CLV = sum_{k=1..horizon} value * (E[Y(k L)] - E[Y((k-1) L)]) / (1 + d)^k``, where ``E[Y(t)]``
is BG/NBD's expected number of purchases in ``(T, T+t]``, ``L`` the period length in the BG/NBD
time unit, ``d`` the discount rate per period and ``value`` Gamma-Gamma's expected average
transaction value. Money is float, in the unit of ``mean_value``.
"""

from __future__ import annotations

from typing import overload

import numpy as np
import numpy.typing as npt

from crm_core.errors import ModelError
from scorers._special import FloatArray, all_scalars, broadcast_floats
from scorers.bgnbd import BgNbdParams, expected_purchases
from scorers.gamma_gamma import GammaGammaParams, expected_average_value

__all__ = ["customer_lifetime_value"]


@overload
def customer_lifetime_value(
    bg: BgNbdParams,
    gg: GammaGammaParams,
    x: float,
    t_x: float,
    T: float,
    mean_value: float,
    *,
    horizon: int,
    discount_rate_per_period: float,
    period_length: float,
) -> float: ...
@overload
def customer_lifetime_value(
    bg: BgNbdParams,
    gg: GammaGammaParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    mean_value: npt.ArrayLike,
    *,
    horizon: int,
    discount_rate_per_period: float,
    period_length: float,
) -> FloatArray: ...
def customer_lifetime_value(
    bg: BgNbdParams,
    gg: GammaGammaParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    mean_value: npt.ArrayLike,
    *,
    horizon: int,
    discount_rate_per_period: float,
    period_length: float,
) -> float | FloatArray:
    """Discounted expected value of a customer's purchases over the next ``horizon`` periods.

    ``horizon`` counts periods of ``period_length`` BG/NBD time units (e.g. 12 months of
    ``4.345`` weeks, as lifetimes' ``freq="W"``); each period's expected purchases are
    discounted by ``(1 + discount_rate_per_period) ** k`` for the ``k``-th period. Arguments
    broadcast together like the BG/NBD functions; ``mean_value`` is the mean of the customer's
    repeat transaction values (ignored when ``x == 0``).

    >>> bg = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> gg = GammaGammaParams(p=6.25, q=3.74, v=15.44)
    >>> clv = customer_lifetime_value(
    ...     bg, gg, 2, 30.43, 38.86, 22.345,
    ...     horizon=12, discount_rate_per_period=0.01, period_length=4.345,
    ... )
    >>> round(clv, 2)
    36.28
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ModelError(f"horizon={horizon!r} must be a whole number of periods >= 1.")
    if not (np.isfinite(period_length) and period_length > 0):
        raise ModelError(f"period_length={period_length!r} must be finite and > 0.")
    if not (np.isfinite(discount_rate_per_period) and discount_rate_per_period > -1):
        raise ModelError("discount_rate_per_period must be finite and > -1.")
    xs, txs, ts, ms = broadcast_floats(x, t_x, T, mean_value)
    value = expected_average_value(gg, xs, ms)
    steps = np.arange(int(horizon) + 1, dtype=np.float64).reshape((-1,) + (1,) * xs.ndim)
    cumulative = expected_purchases(bg, steps * period_length, xs, txs, ts)
    increments = np.diff(cumulative, axis=0)
    discount = (1.0 + discount_rate_per_period) ** -steps[1:]
    out = np.asarray(value * np.sum(increments * discount, axis=0), dtype=np.float64)
    return float(out) if all_scalars(x, t_x, T, mean_value) else out
