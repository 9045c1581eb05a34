"""Customer lifetime value: batch oracle, identities, monotonicity, contracts."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scorers.clv
from crm_core.errors import ModelError
from crm_score.datasets import cdnow_summary, load_cdnow_sample
from scorers.bgnbd import BgNbdParams, expected_purchases
from scorers.clv import customer_lifetime_value
from scorers.gamma_gamma import GammaGammaParams, expected_average_value
from tests.paths import CDNOW_SAMPLE

BG = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
GG = GammaGammaParams(p=6.25, q=3.74, v=15.44)
MONTH = 4.345  # weeks per month, as lifetimes' freq="W"


def lifetimes_loop(
    x: float,
    t_x: float,
    T: float,  # noqa: N803
    m: float,
    horizon: int,
    rate: float,
    period: float,
) -> float:
    """The period-by-period loop of lifetimes' ``_customer_lifetime_value``, one customer."""
    value = expected_average_value(GG, x, m)
    total = 0.0
    for k in range(1, horizon + 1):
        step = expected_purchases(BG, k * period, x, t_x, T)
        step -= expected_purchases(BG, (k - 1) * period, x, t_x, T)
        total += value * step / (1 + rate) ** k
    return total


def test_matches_the_period_by_period_loop() -> None:
    s = cdnow_summary(load_cdnow_sample(CDNOW_SAMPLE)).iloc[::53]
    x, t_x, big_t = s["x"].to_numpy(), s["t_x"].to_numpy(), s["T"].to_numpy()
    m = s["mean_value"].to_numpy()
    clv = customer_lifetime_value(
        BG, GG, x, t_x, big_t, m, horizon=12, discount_rate_per_period=0.01, period_length=MONTH
    )
    for i, row in enumerate(zip(x.tolist(), t_x.tolist(), big_t.tolist(), m.tolist(), strict=True)):
        assert clv[i] == pytest.approx(lifetimes_loop(*row, 12, 0.01, MONTH), rel=1e-12)
        scalar = customer_lifetime_value(
            BG, GG, *row, horizon=12, discount_rate_per_period=0.01, period_length=MONTH
        )
        assert isinstance(scalar, float)
        assert scalar == pytest.approx(clv[i], rel=1e-14)


def test_whole_cdnow_sample_is_finite_and_positive() -> None:
    s = cdnow_summary(load_cdnow_sample(CDNOW_SAMPLE))
    clv = customer_lifetime_value(
        BG,
        GG,
        s["x"].to_numpy(),
        s["t_x"].to_numpy(),
        s["T"].to_numpy(),
        s["mean_value"].to_numpy(),
        horizon=12,
        discount_rate_per_period=0.01,
        period_length=MONTH,
    )
    assert clv.shape == (2357,)
    assert np.all(np.isfinite(clv))
    assert np.all(clv > 0)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 500),
    st.floats(0.0, 1.0),
    st.floats(0.0, 500.0),
    st.floats(0.01, 1e4),
    st.integers(1, 36),
    st.floats(0.0, 0.2),
)
def test_undiscounted_clv_telescopes_and_discounting_lowers_it(
    x: int, frac: float, big_t: float, m: float, horizon: int, rate: float
) -> None:
    t_x = frac * big_t if x > 0 else 0.0

    def clv(discount_rate: float, periods: int) -> float:
        return customer_lifetime_value(
            BG,
            GG,
            x,
            t_x,
            big_t,
            m,
            horizon=periods,
            discount_rate_per_period=discount_rate,
            period_length=MONTH,
        )

    flat = clv(0.0, horizon)
    purchases = expected_purchases(BG, horizon * MONTH, x, t_x, big_t)
    assert flat == pytest.approx(expected_average_value(GG, x, m) * purchases, rel=1e-9)
    discounted, longer = clv(rate, horizon), clv(rate, horizon + 1)
    assert 0.0 <= discounted <= flat * (1 + 1e-12)
    assert discounted <= longer * (1 + 1e-12)


@pytest.mark.parametrize(
    ("horizon", "rate", "period"),
    [(0, 0.01, 1.0), (2.5, 0.01, 1.0), (True, 0.01, 1.0), (3, -1.0, 1.0), (3, 0.01, 0.0)],
)
def test_invalid_settings_are_refused(horizon: int, rate: float, period: float) -> None:
    with pytest.raises(ModelError):
        customer_lifetime_value(
            BG,
            GG,
            2,
            30.0,
            38.0,
            20.0,
            horizon=horizon,
            discount_rate_per_period=rate,
            period_length=period,
        )


def test_doctests() -> None:
    assert doctest.testmod(scorers.clv, raise_on_error=True).attempted > 0
