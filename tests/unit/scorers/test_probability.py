"""Probability scores from a profile: summary arithmetic, sane scores, fitting, JSON round trip."""

from __future__ import annotations

import doctest
import itertools
import pickle
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

import scorers.probability
from crm_core.errors import FitRejected, ModelError
from scorers._special import FloatArray
from scorers.bgnbd import expected_next_purchase_time, p_alive
from scorers.clv import customer_lifetime_value
from scorers.gamma_gamma import expected_average_value
from scorers.pareto_nbd import ParetoNbdParams
from scorers.probability import (
    MIN_CUSTOMERS,
    CustomerSummary,
    ProbabilityModel,
    fit_from_profiles,
    summary_of,
)
from scorers.probability_batch import score_batch
from scorers.profile import Profile
from scorers.purchase_models import PurchaseModel, check_fit, fit_purchase_model
from tests.populations import AS_OF, BG, END, GG, WEEK, simulate

MODEL = ProbabilityModel("7", AS_OF, BG, GG, n_customers=5000, log_likelihood=-1.0)


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
    # Orders of one day are one transaction: no repeat purchase, whatever their times.
    same = Profile(first_purchase_at=END - WEEK, last_purchase_at=END - WEEK + 3600, orders=2,
                   purchase_days=1, gross_minor=500, first_day_minor=500)  # fmt: skip
    assert summary_of(same, AS_OF) == (0, 0.0, 1.0, 0.0)
    # The value is the mean of the repeat transactions, returns netted pro rata (80% kept).
    days = p._replace(purchase_days=3, first_day_minor=4_000)
    assert summary_of(days, AS_OF) == (2, 6.0, 10.0, 24.0)
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


def test_clv_is_scorers_clv_on_the_repeat_transactions() -> None:
    p = Profile(first_purchase_at=END - 40 * WEEK, last_purchase_at=END - 3 * WEEK, orders=5,
                purchase_days=4, gross_minor=25_000, first_day_minor=10_000)  # fmt: skip
    x, t_x, big_t, m = summary_of(p, AS_OF) or (0, 0.0, 0.0, 0.0)
    assert (x, m) == (3, 50.0)
    weekly = 1.1 ** (7 / 365.25) - 1
    clv = customer_lifetime_value(
        BG, GG, x, t_x, big_t, m, horizon=52, discount_rate_per_period=weekly, period_length=1.0
    )
    s = MODEL.score(p, AS_OF)
    assert s is not None and s.clv == pytest.approx(clv * 100, rel=1e-9)
    # A one-time buyer is worth the population's mean spend per expected transaction.
    once = Profile(first_purchase_at=END - 10 * WEEK, last_purchase_at=END - 10 * WEEK, orders=2,
                   purchase_days=1, gross_minor=9_000, first_day_minor=9_000)  # fmt: skip
    one_timer = customer_lifetime_value(
        BG, GG, 0, 0.0, 10.0, 0.0, horizon=52, discount_rate_per_period=weekly, period_length=1.0
    )
    s = MODEL.score(once, AS_OF)
    assert s is not None and s.clv == pytest.approx(one_timer * 100, rel=1e-9)
    assert expected_average_value(GG, 0, 0.0) == pytest.approx(GG.p * GG.v / (GG.q - 1))
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


@pytest.mark.parametrize("kind", ["mbgnbd", "pareto_nbd"])
def test_a_one_time_buyers_p_alive_falls_with_silence(kind: str) -> None:
    model = replace(MODEL, purchases=fit_purchase_model(kind, *_summaries(simulate(2000, 3))))
    p = Profile(first_purchase_at=END - 30 * WEEK, last_purchase_at=END - 30 * WEEK, orders=1)
    alive = [model.score(p, AS_OF + timedelta(weeks=w)) for w in (-29, -20, 0, 20, 60)]
    values = [s.p_alive for s in alive if s is not None]
    assert len(values) == 5 and values[0] < 1.0
    assert all(later < earlier for earlier, later in itertools.pairwise(values))
    crossing = model.p_alive_below_at(p, values[2])
    assert crossing is not None
    assert abs(crossing - AS_OF) < timedelta(seconds=1)  # the closed form or root agrees
    batch = score_batch(model, [p], [float(END)])
    assert float(batch.p_alive[0]) == pytest.approx(values[2], rel=1e-12)


def _summaries(profiles: list[Profile]) -> tuple[FloatArray, FloatArray, FloatArray]:
    rows = np.array([summary_of(p, AS_OF) for p in profiles], dtype=np.float64)
    return rows[:, 0], rows[:, 1], rows[:, 2]


def test_fit_recovers_the_simulated_parameters() -> None:
    model = fit_from_profiles(simulate(5000, seed=11), AS_OF, version="3", dropout="mbgnbd")
    assert model.converged and model.n_customers == 5000 and model.version == "3"
    assert model.purchases is not None and model.purchases.kind == "mbgnbd"
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
    one_timers = [
        p._replace(orders=1, purchase_days=1, last_purchase_at=p.first_purchase_at)
        for p in profiles
    ]
    with pytest.raises(ModelError, match="0 with a repeat purchase"):
        fit_from_profiles(one_timers, AS_OF)


def test_a_degenerate_fit_is_rejected() -> None:
    """Repeat purchases at t_x == 0 (same-day orders counted apart, as profiles stored before
    the day count did) make the likelihood unbounded: the fit must not be published."""
    profiles = simulate(MIN_CUSTOMERS + 200, seed=5)
    unmerged = [p._replace(purchase_days=0, last_purchase_at=p.first_purchase_at) for p in profiles]
    with pytest.raises(FitRejected, match=r"log-likelihood .* not finite and negative"):
        fit_from_profiles(unmerged, AS_OF)
    with pytest.raises(FitRejected, match="ran off to 0 or infinity"):
        check_fit("pareto_nbd", -10.0, at_bound=True)
    with pytest.raises(FitRejected, match="not finite"):
        check_fit("mbgnbd", float("nan"), at_bound=False)


def test_json_and_pickle_round_trip() -> None:
    dropout = PurchaseModel("pareto_nbd", ParetoNbdParams(0.55, 10.58, 0.61, 11.67), -9595.0)
    for model in (
        MODEL,
        replace(MODEL, gamma_gamma=None, clv_horizon_weeks=26),
        replace(MODEL, purchases=dropout),
    ):
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
