"""Probability scores from a profile: summary arithmetic, sane scores, fitting, JSON round trip."""

from __future__ import annotations

import doctest
import pickle
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import scorers.probability
from crm_core.errors import ModelError
from scorers.bgnbd import BgNbdParams, expected_next_purchase_time, p_alive
from scorers.clv import customer_lifetime_value
from scorers.gamma_gamma import GammaGammaParams, expected_average_value
from scorers.probability import (
    MIN_CUSTOMERS,
    CustomerSummary,
    ProbabilityModel,
    fit_from_profiles,
    summary_of,
)
from scorers.profile import Profile

WEEK = 7 * 86_400
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
END = int(AS_OF.timestamp())
BG = BgNbdParams(r=0.8, alpha=6.0, a=0.6, b=3.0)
GG = GammaGammaParams(p=6.0, q=4.0, v=15.0)
MODEL = ProbabilityModel("7", AS_OF, BG, GG, n_customers=5000, log_likelihood=-1.0)


def simulate(n: int, seed: int) -> list[Profile]:
    """Profiles of a BG/NBD + Gamma-Gamma population (BG, GG) observed for 52-104 weeks."""
    rng = np.random.default_rng(seed)
    lam, drop_p = rng.gamma(BG.r, 1 / BG.alpha, n), rng.beta(BG.a, BG.b, n)
    big_t, drop_after = rng.uniform(52, 104, n), rng.geometric(drop_p)
    x, t_x, clock, active = np.zeros(n, np.int64), np.zeros(n), np.zeros(n), np.ones(n, bool)
    while active.any():  # one repeat purchase per round; drop out after the drop_after-th
        clock[active] += rng.exponential(1 / lam[active])
        active &= clock <= big_t
        x[active] += 1
        t_x[active] = clock[active]
        active &= x < drop_after
    orders = x + 1
    nu = rng.gamma(GG.q, 1 / GG.v, n)  # each order value ~ Gamma(p, nu): the mean of `orders`
    mean = rng.gamma(orders * GG.p, 1 / nu) / orders
    first = END - np.round(big_t * WEEK).astype(np.int64)
    last = first + np.round(t_x * WEEK).astype(np.int64)
    return [
        Profile(first_purchase_at=int(f), last_purchase_at=int(lp), orders=int(k),
                gross_minor=round(m * k * 100))
        for f, lp, k, m in zip(first, last, orders, mean, strict=True)
    ]  # fmt: skip


def test_doctests() -> None:
    assert doctest.testmod(scorers.probability).failed == 0


def test_summary_arithmetic() -> None:
    p = Profile(
        first_purchase_at=END - 10 * WEEK,
        last_purchase_at=END - 4 * WEEK,
        orders=4,
        gross_minor=10_000,
        returned_minor=2_000,
    )
    assert summary_of(p, AS_OF) == CustomerSummary(x=3, t_x=6.0, T=10.0, mean_value=20.0)
    assert summary_of(p, AS_OF, minor_per_major=1) == (3, 6.0, 10.0, 2000.0)
    # Same-second orders are not merged: 2 orders at one time are one repeat purchase at t_x 0.
    same = Profile(first_purchase_at=END - WEEK, last_purchase_at=END - WEEK, orders=2)
    assert summary_of(same, AS_OF) == (1, 0.0, 1.0, 0.0)
    # Refunds beyond spend clamp the value to 0; a purchase after as_of gives T == t_x.
    assert summary_of(p._replace(returned_minor=20_000), AS_OF) == (3, 6.0, 10.0, 0.0)
    assert summary_of(p, AS_OF - timedelta(weeks=8)) == (3, 6.0, 6.0, 20.0)


def test_no_orders_means_no_summary_and_no_scores() -> None:
    service_only = Profile(tickets_opened=2, last_ticket_at=END)
    assert summary_of(service_only, AS_OF) is None
    assert MODEL.score(service_only, AS_OF) is None
    assert MODEL.p_alive_below_at(service_only, 0.5) is None


def test_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        summary_of(Profile(first_purchase_at=0, orders=1), datetime(2026, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize("seed", range(3))
def test_scores_are_sane(seed: int) -> None:
    for p in simulate(300, seed):
        s = MODEL.score(p, AS_OF)
        summary = summary_of(p, AS_OF)
        assert s is not None and summary is not None
        assert 0.0 <= s.p_alive <= 1.0
        assert s.p_alive == pytest.approx(p_alive(BG, *summary[:3]))
        assert 0.0 <= s.expected_purchases_30d <= s.expected_purchases_90d
        assert s.clv is not None and s.clv >= 0.0
        oracle = expected_next_purchase_time(BG, *summary[:3], max_horizon=5200)
        if oracle is None:
            assert s.next_purchase_at is None
        else:
            assert s.next_purchase_at is not None
            weeks = (s.next_purchase_at - AS_OF) / timedelta(weeks=1)
            assert weeks == pytest.approx(oracle, rel=1e-4)


def test_clv_is_scorers_clv_with_the_order_count_for_gamma_gamma() -> None:
    p = Profile(first_purchase_at=END - 40 * WEEK, last_purchase_at=END - 3 * WEEK, orders=5,
                gross_minor=25_000)  # fmt: skip
    x, t_x, big_t, m = summary_of(p, AS_OF) or (0, 0.0, 0.0, 0.0)
    weekly = 1.1 ** (7 / 365.25) - 1
    by_x = customer_lifetime_value(
        BG, GG, x, t_x, big_t, m, horizon=52, discount_rate_per_period=weekly, period_length=1.0
    )
    rescale = expected_average_value(GG, x + 1, m) / expected_average_value(GG, x, m)
    s = MODEL.score(p, AS_OF)
    assert s is not None and s.clv == pytest.approx(by_x * rescale * 100, rel=1e-9)
    without_spend_model = replace(MODEL, gamma_gamma=None).score(p, AS_OF)
    assert without_spend_model is not None and without_spend_model.clv is None
    refunded = MODEL.score(p._replace(returned_minor=30_000), AS_OF)
    assert refunded is not None and refunded.clv == 0.0


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.8])
def test_crossing_time_gives_p_alive_at_the_threshold(threshold: float) -> None:
    p = Profile(first_purchase_at=END - 30 * WEEK, last_purchase_at=END - 20 * WEEK, orders=4)
    at = MODEL.p_alive_below_at(p, threshold)
    assert at is not None
    s = MODEL.score(p, at)
    assert s is not None and s.p_alive == pytest.approx(threshold, abs=1e-6)
    later = MODEL.score(p, at + timedelta(days=1))
    assert later is not None and later.p_alive < threshold


def test_crossing_without_repeat_purchase_is_never() -> None:
    p = Profile(first_purchase_at=END - 30 * WEEK, last_purchase_at=END - 30 * WEEK, orders=1)
    assert MODEL.p_alive_below_at(p, 0.5) is None
    s = MODEL.score(p, AS_OF)
    assert s is not None and s.p_alive == 1.0


def test_fit_recovers_the_simulated_parameters() -> None:
    model = fit_from_profiles(simulate(5000, seed=11), AS_OF, version="3")
    assert model.converged and model.n_customers == 5000 and model.version == "3"
    fitted = model.bgnbd
    assert fitted.r == pytest.approx(BG.r, rel=0.1)
    assert fitted.alpha == pytest.approx(BG.alpha, rel=0.1)
    assert fitted.a == pytest.approx(BG.a, rel=0.25)
    assert fitted.b == pytest.approx(BG.b, rel=0.25)
    gg = model.gamma_gamma
    assert gg is not None
    assert gg.q == pytest.approx(GG.q, rel=0.25)
    # p and v trade off against each other; the population mean spend is well determined.
    assert gg.p * gg.v / (gg.q - 1) == pytest.approx(GG.p * GG.v / (GG.q - 1), rel=0.1)


def test_fit_skips_customers_who_start_later_and_needs_enough_customers() -> None:
    profiles = simulate(MIN_CUSTOMERS + 200, seed=5)
    future = Profile(first_purchase_at=END + WEEK, last_purchase_at=END + WEEK, orders=1)
    model = fit_from_profiles([*profiles, future, Profile(tickets_opened=1)], AS_OF)
    assert model.n_customers == len(profiles)
    with pytest.raises(ModelError, match=f"need at least {MIN_CUSTOMERS}"):
        fit_from_profiles(profiles[: MIN_CUSTOMERS - 1], AS_OF)
    one_timers = [p._replace(orders=1, last_purchase_at=p.first_purchase_at) for p in profiles]
    with pytest.raises(ModelError, match="0 with a repeat order"):
        fit_from_profiles(one_timers, AS_OF)


def test_json_and_pickle_round_trip() -> None:
    for model in (MODEL, replace(MODEL, gamma_gamma=None, clv_horizon_weeks=26)):
        assert ProbabilityModel.from_json(model.to_json()) == model
        assert pickle.loads(pickle.dumps(model)) == model
    decoded = ProbabilityModel.from_json(MODEL.to_json())
    assert decoded.fitted_at.tzinfo is not None


@pytest.mark.parametrize(
    "payload", [b"not json", b"{}", b'{"format": "other/1"}', MODEL.to_json()[:-1] + b',"x":1}']
)
def test_from_json_refuses_other_payloads(payload: bytes) -> None:
    with pytest.raises(ModelError, match="crm-score fit"):
        ProbabilityModel.from_json(payload)


def test_scoring_is_deterministic() -> None:
    p = simulate(1, seed=2)[0]
    assert MODEL.score(p, AS_OF) == MODEL.score(p, AS_OF)
