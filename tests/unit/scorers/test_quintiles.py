"""RFM quintiles: the sketch against a batch oracle (numpy.quantile), merging, bytes, scores."""

from __future__ import annotations

import doctest
import random
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import scorers.quintiles
from crm_core.errors import ModelError
from scorers.quintiles import QUINTILE_RANKS, QuintileSketch, RfmBoundaries
from scorers.rfm import Rfm

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
Values = npt.NDArray[np.float64]


def population(n: int, seed: int) -> list[Rfm]:
    """Realistic shapes: many ties at low frequency, long-tailed spend, uniform recency."""
    rng = np.random.default_rng(seed)
    recency = np.round(rng.uniform(0, 730, n), 2)
    frequency = rng.geometric(0.45, n)
    monetary = np.round(rng.lognormal(8.5, 1.2, n) * frequency).astype(np.int64)
    return [
        Rfm(float(r), int(f), int(m)) for r, f, m in zip(recency, frequency, monetary, strict=True)
    ]


def columns(rfms: list[Rfm]) -> dict[str, Values]:
    return {
        "recency_days": np.array([c.recency_days for c in rfms], dtype=np.float64),
        "frequency": np.array([c.frequency for c in rfms], dtype=np.float64),
        "monetary_minor": np.array([c.monetary_minor for c in rfms], dtype=np.float64),
    }


def sketch_of(rfms: list[Rfm], k: int = 200) -> QuintileSketch:
    sketch = QuintileSketch(k)
    for customer in rfms:
        sketch.update(customer)
    return sketch


def oracle(values: Values, rank: float) -> float:
    return float(np.quantile(values, min(max(rank, 0.0), 1.0), method="inverted_cdf"))


def assert_within_rank_error(bounds: RfmBoundaries, rfms: list[Rfm], eps: float) -> None:
    """Each cut point lies between the exact quantiles at rank q - eps and q + eps."""
    for name, values in columns(rfms).items():
        cuts = getattr(bounds, name)
        for q, cut in zip(QUINTILE_RANKS, cuts, strict=True):
            assert oracle(values, q - eps) <= cut <= oracle(values, q + eps), (name, q, cut)


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(scorers.quintiles)
    assert failures == 0
    assert tried > 0


def test_exact_while_small_and_independent_of_insertion_order() -> None:
    customers = population(180, seed=1)
    bounds = sketch_of(customers).boundaries(1, AS_OF)
    for name, values in columns(customers).items():
        assert getattr(bounds, name) == tuple(oracle(values, q) for q in QUINTILE_RANKS)
    shuffled = customers[:]
    random.Random(7).shuffle(shuffled)
    assert sketch_of(shuffled).boundaries(1, AS_OF) == bounds
    assert sketch_of(customers).rank_error == 0.0


def test_boundaries_are_within_the_rank_error_of_the_batch_oracle() -> None:
    customers = population(30_000, seed=2)
    sketch = sketch_of(customers)
    assert sketch.n == len(customers)
    assert 0.0 < sketch.rank_error < 0.02
    assert_within_rank_error(sketch.boundaries(3, AS_OF), customers, sketch.rank_error)


def test_merged_partition_sketches_match_one_sketch_over_all() -> None:
    customers = population(24_000, seed=3)
    partitions = [customers[i::4] for i in range(4)]
    merged = QuintileSketch()
    for part in partitions:
        merged.merge(QuintileSketch.from_bytes(sketch_of(part).to_bytes()))  # as via Redis
    whole = sketch_of(customers)
    assert merged.n == whole.n == len(customers)
    eps = max(merged.rank_error, whole.rank_error)
    assert_within_rank_error(merged.boundaries(1, AS_OF), customers, eps)
    assert_within_rank_error(whole.boundaries(1, AS_OF), customers, eps)


def test_merge_is_exact_while_the_total_fits_in_k() -> None:
    customers = population(900, seed=4)
    merged = QuintileSketch(k=1000)
    for i in range(3):
        merged.merge(sketch_of(customers[i::3], k=1000))
    assert merged.rank_error == 0.0
    assert merged.boundaries(1, AS_OF) == sketch_of(customers, k=1000).boundaries(1, AS_OF)


def test_bytes_round_trip() -> None:
    for n in (0, 50, 5_000):
        sketch = sketch_of(population(n, seed=5))
        data = sketch.to_bytes()
        restored = QuintileSketch.from_bytes(data)
        assert restored.n == sketch.n
        assert restored.to_bytes() == data
        if n:
            assert restored.boundaries(2, AS_OF) == sketch.boundaries(2, AS_OF)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d[:7],
        lambda d: b"XXXX" + d[4:],
        lambda d: d[:4] + b"\x09" + d[5:],
        lambda d: d[:-1],
        lambda d: d[:21] + bytes(len(d) - 21),
    ],
)
def test_corrupt_bytes_are_refused(corrupt: object) -> None:
    data = sketch_of(population(500, seed=6)).to_bytes()
    assert callable(corrupt)
    with pytest.raises(ModelError, match="rebuild"):
        QuintileSketch.from_bytes(corrupt(data))


def test_customers_who_never_ordered_are_not_counted_and_get_no_score() -> None:
    sketch = QuintileSketch()
    sketch.update(Rfm(recency_days=None, frequency=0, monetary_minor=0))
    assert sketch.n == 0
    with pytest.raises(ModelError, match="no customer"):
        sketch.boundaries(1, AS_OF)
    sketch.update(Rfm(recency_days=3.0, frequency=1, monetary_minor=500))
    bounds = sketch.boundaries(1, AS_OF)
    assert bounds.score(None, 0, 0) is None
    assert bounds.score_rfm(Rfm(None, 0, 0)) is None
    assert bounds.score_rfm(Rfm(3.0, 1, 500)) == (5, 1, 1)


def test_ties_go_to_the_bucket_of_smaller_values() -> None:
    bounds = RfmBoundaries(
        version=1,
        as_of=AS_OF,
        recency_days=(10, 20, 30, 40),
        frequency=(1, 1, 1, 3),
        monetary_minor=(100, 200, 300, 400),
    )
    assert bounds.score(10.0, 1, 100) == (5, 1, 1)  # equal to the first cut point
    assert bounds.score(10.5, 2, 101) == (4, 4, 2)
    assert bounds.score(40.0, 3, 400) == (2, 4, 4)
    assert bounds.score(40.1, 4, 401) == (1, 5, 5)


cuts = st.lists(st.integers(0, 50), min_size=4, max_size=4).map(
    lambda xs: tuple(float(x) for x in sorted(xs))
)


@given(
    r_cuts=cuts,
    f_cuts=cuts,
    m_cuts=cuts,
    a=st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60)),
    b=st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60)),
)
def test_scores_are_monotone(
    r_cuts: tuple[float, float, float, float],
    f_cuts: tuple[float, float, float, float],
    m_cuts: tuple[float, float, float, float],
    a: tuple[int, int, int],
    b: tuple[int, int, int],
) -> None:
    bounds = RfmBoundaries(
        version=0, as_of=AS_OF, recency_days=r_cuts, frequency=f_cuts, monetary_minor=m_cuts
    )
    score_a = bounds.score(float(a[0]), a[1], a[2])
    score_b = bounds.score(float(b[0]), b[1], b[2])
    assert score_a is not None
    assert score_b is not None
    assert all(1 <= s <= 5 for s in (*score_a, *score_b))
    if a[0] <= b[0]:
        assert score_a[0] >= score_b[0]  # more recent: higher R
    for dim in (1, 2):
        if a[dim] <= b[dim]:
            assert score_a[dim] <= score_b[dim]  # more orders / spend: higher F / M


@given(r_cuts=cuts, recency=st.floats(0, 60, allow_nan=False))
def test_next_recency_cut_is_where_r_drops(
    r_cuts: tuple[float, float, float, float], recency: float
) -> None:
    bounds = RfmBoundaries(
        version=0, as_of=AS_OF, recency_days=r_cuts, frequency=r_cuts, monetary_minor=r_cuts
    )
    r_now = bounds.score(recency, 1, 1)
    cut = bounds.next_recency_cut(recency)
    assert r_now is not None
    if cut is None:
        assert r_now[0] == 1
        return
    assert cut >= recency
    at_cut, after_cut = bounds.score(cut, 1, 1), bounds.score(cut + 1e-6, 1, 1)
    assert at_cut is not None
    assert after_cut is not None
    assert at_cut[0] == r_now[0]
    assert after_cut[0] < r_now[0]


def test_exact_scores_are_quintiles_without_ties() -> None:
    customers = [Rfm(float(i), i, i) for i in range(1, 101)]
    bounds = sketch_of(customers).boundaries(1, AS_OF)
    scores = [bounds.score_rfm(c) for c in customers]
    for dim in range(3):
        counts = np.bincount([s[dim] for s in scores if s is not None], minlength=6)[1:]
        assert counts.tolist() == [20, 20, 20, 20, 20]


def test_boundaries_validate_and_round_trip_through_json() -> None:
    bounds = RfmBoundaries(
        version=4,
        as_of=datetime(2026, 3, 1, 2, tzinfo=timezone(timedelta(hours=2))),
        recency_days=(1, 2, 3, 4),
        frequency=(1, 1, 2, 3),
        monetary_minor=(10, 20, 30, 40),
    )
    assert bounds.as_of == AS_OF
    assert bounds.as_of.tzinfo is UTC
    assert RfmBoundaries.model_validate_json(bounds.model_dump_json()) == bounds
    with pytest.raises(ValidationError, match="timezone"):
        RfmBoundaries.model_validate(dict(bounds.model_dump(), as_of=datetime(2026, 3, 1)))  # noqa: DTZ001
    with pytest.raises(ValidationError, match="non-decreasing"):
        RfmBoundaries.model_validate(dict(bounds.model_dump(), frequency=(3, 2, 1, 0)))
    with pytest.raises(ValidationError, match="finite"):
        RfmBoundaries.model_validate(dict(bounds.model_dump(), frequency=(1, 2, 3, float("nan"))))
    with pytest.raises(ValidationError):
        bounds.__setattr__("version", 5)  # frozen


def test_k_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="k must be"):
        QuintileSketch(k=4)
