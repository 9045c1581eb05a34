"""The batch scorer agrees with the exact per-customer reference (ProbabilityModel.score)."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime

import numpy as np
import pytest

from scorers import probability_batch
from scorers.bgnbd import BgNbdParams
from scorers.gamma_gamma import GammaGammaParams
from scorers.probability import ProbabilityModel
from scorers.probability_batch import score_batch
from scorers.profile import Profile

MODEL = ProbabilityModel(
    "7",
    datetime(2026, 1, 1, tzinfo=UTC),
    BgNbdParams(0.243, 4.414, 0.793, 2.426),
    GammaGammaParams(6.25, 3.74, 15.44),
    n_customers=2357,
    log_likelihood=-9582.4,
)
DAY = 86_400


def _population(n: int, seed: int) -> tuple[list[Profile], list[float]]:
    rng = np.random.default_rng(seed)
    profiles, as_of = [], []
    for _ in range(n):
        first = int(rng.integers(0, 300)) * DAY
        orders = int(rng.integers(1, 15))
        last = first + int(rng.integers(0, 200)) * DAY * (orders > 1)
        gross = int(rng.integers(500, 40_000)) * orders
        refunded = int(gross * rng.uniform(0, 0.3)) if rng.random() < 0.2 else 0
        profiles.append(
            Profile(
                first_purchase_at=first, last_purchase_at=last, orders=orders,
                gross_minor=gross, returned_minor=refunded,
            )
        )  # fmt: skip
        as_of.append(float(last + int(rng.integers(0, 400)) * DAY))
    return profiles, as_of


def test_batch_equals_reference_where_exact_and_within_bounds_where_simplified() -> None:
    profiles, as_of = _population(300, seed=3)
    batch = score_batch(MODEL, profiles, as_of)
    for i, (profile, at) in enumerate(zip(profiles, as_of, strict=True)):
        ref = MODEL.score(profile, datetime.fromtimestamp(at, UTC))
        assert ref is not None
        assert batch.p_alive[i] == pytest.approx(ref.p_alive, rel=1e-9, abs=1e-12)
        assert batch.expected_purchases_30d[i] == pytest.approx(
            ref.expected_purchases_30d, rel=1e-9
        )
        assert batch.expected_purchases_90d[i] == pytest.approx(
            ref.expected_purchases_90d, rel=1e-9
        )
        assert ref.clv is not None
        # monthly instead of weekly discounting: within 0.5% (plus a cent)
        assert batch.clv[i] == pytest.approx(ref.clv, rel=5e-3, abs=1.0)
        next_at = batch.next_purchase_at[i]
        horizon_end = at + MODEL.clv_horizon_weeks * 7 * DAY
        if ref.next_purchase_at is not None and ref.next_purchase_at.timestamp() < horizon_end:
            # linear interpolation between monthly grid points: within a week
            assert abs(next_at - ref.next_purchase_at.timestamp()) < 7 * DAY
        else:
            assert np.isnan(next_at)


def test_customers_without_orders_get_nan_and_do_not_disturb_others() -> None:
    profiles, as_of = _population(5, seed=4)
    mixed = [Profile(), *profiles, Profile(messages_sent=3)]
    batch = score_batch(MODEL, mixed, [as_of[0], *as_of, as_of[0]])
    alone = score_batch(MODEL, profiles, as_of)
    assert np.isnan(batch.p_alive[0]) and np.isnan(batch.clv[-1])
    np.testing.assert_allclose(batch.p_alive[1:-1], alone.p_alive)
    np.testing.assert_allclose(batch.clv[1:-1], alone.clv)


def test_an_empty_or_orderless_batch() -> None:
    assert len(score_batch(MODEL, [], []).p_alive) == 0
    assert np.isnan(score_batch(MODEL, [Profile()], [0.0]).clv).all()


def test_docstring_examples_run() -> None:
    assert doctest.testmod(probability_batch).failed == 0


def test_a_customers_scores_do_not_depend_on_the_batch_it_is_scored_in() -> None:
    """Replay = live needs bit-equal scores whatever else shared the batch."""
    profiles, as_of = _population(600, seed=5)
    full = score_batch(MODEL, profiles, as_of)
    rng = np.random.default_rng(3)
    for _ in range(30):
        picked = rng.choice(len(profiles), size=int(rng.integers(1, 40)), replace=False)
        part = score_batch(MODEL, [profiles[i] for i in picked], [as_of[i] for i in picked])
        for name in ("p_alive", "expected_purchases_30d", "next_purchase_at", "clv"):
            np.testing.assert_array_equal(getattr(part, name), getattr(full, name)[picked])
