"""Purchase anomalies: hand-built histories with known answers, the decayed amount statistics
against a numpy recomputation, state round-trips, determinism, and injected anomalies."""

from __future__ import annotations

import doctest
import math
import random
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scorers.anomaly as anomaly_module
from bench.anomaly_precision import _histories, evaluate
from crm_core.errors import ConfigError
from crm_core.settings import Settings
from crm_score.simulate import SimulationConfig, simulate
from schemas import EventParser
from schemas.outputs import Severity
from scorers.anomaly import AnomalyPolicy, AnomalyScore, AnomalyScorer, PurchaseHistory

DAY = 86_400
TAU = 365.0 * DAY
SCORER = AnomalyScorer()
NOW = datetime(2030, 1, 1, tzinfo=UTC)

Walk = list[tuple[str, int, int]]  # (event type, epoch second, amount minor)


def walk(events: Walk, scorer: AnomalyScorer = SCORER, *, via_json: bool = False) -> tuple[
    PurchaseHistory, list[AnomalyScore | None]
]:  # fmt: skip
    """Score events in order; ``via_json`` stores and reloads the state between events."""
    history, results = PurchaseHistory(), []
    for event_type, at, amount in events:
        if via_json:
            history = PurchaseHistory.from_list(orjson.loads(orjson.dumps(history.to_list())))
        history, result = scorer.score(history, event_type, at, amount)
        results.append(result)
    return history, results


def monthly(n: int, amount: int = 15_000) -> Walk:
    """``n`` orders 30 days apart, amounts varying a little around ``amount``."""
    return [("order_placed", k * 30 * DAY, amount + 500 * (k % 3 - 1)) for k in range(n)]


def test_docstring_examples() -> None:
    failures, _ = doctest.testmod(anomaly_module)
    assert failures == 0


# --- hand-built histories ------------------------------------------------------------------------
def test_a_large_order_alerts_with_its_ratio_and_normal_orders_do_not() -> None:
    events = monthly(14)
    events.insert(12, ("order_placed", 345 * DAY, 124_000))  # after a year of ~150.00
    events.insert(14, ("order_placed", 365 * DAY, 30_000))  # twice the usual: not unusual
    _, results = walk(events)
    flagged = [k for k, r in enumerate(results) if r is not None and r.anomalous]
    assert flagged == [12]
    large = results[12]
    assert large is not None
    assert large.reasons == ["order of 1,240.00 is 8.3x this customer's typical 150.22"]
    assert large.facts == {
        "amount_minor": 124_000, "typical_amount_minor": 15_022, "amount_ratio": 8.25
    }  # fmt: skip
    assert large.severity is Severity.CRITICAL and large.score > AnomalyPolicy().threshold
    assert large.details()["score"] == round(large.score, 3)
    after = results[13]
    assert after is not None and after.p_values["amount"] > 0.1  # the outlier did not mask it


def test_nothing_is_scored_before_min_orders() -> None:
    _, results = walk([("order_placed", 0, 100), ("order_placed", DAY, 10**9)])
    assert results == [None, None]


def test_a_burst_alerts_once_in_words() -> None:
    events = monthly(12, 5_000)
    events += [("order_placed", int((400 + d) * DAY), 5_000) for d in (0, 0.4, 0.9, 1.6, 2.0)]
    _, results = walk(events)
    flagged = [(k, r.reasons) for k, r in enumerate(results) if r is not None and r.anomalous]
    assert flagged == [(15, ["4 orders in 2 days, usually 1 a month"])]
    alert = results[15]
    assert alert is not None and alert.severity is Severity.WARNING
    assert alert.facts["orders_in_span"] == 4


def test_a_return_spree_alerts_once_in_words() -> None:
    events = monthly(12, 5_000)
    events += [("order_returned", (332 + k) * DAY, 5_000) for k in range(4)]
    events += [("order_placed", 360 * DAY, 5_000), ("order_returned", 365 * DAY, 5_000)]
    _, results = walk(events)
    flagged = [(k, r.reasons) for k, r in enumerate(results) if r is not None and r.anomalous]
    assert flagged == [(15, ["4 of the last 4 orders returned, usually 1 in 28"])]
    assert results[17] is not None and not results[17].anomalous  # alerted returns count once


def test_an_occasional_return_is_normal() -> None:
    events = monthly(12, 5_000)
    events += [("order_returned", 335 * DAY, 5_000)]
    _, results = walk(events)
    assert results[-1] is not None and not results[-1].anomalous


def test_late_events_are_added_but_never_scored() -> None:
    history, _ = walk(monthly(6))
    later, result = SCORER.score(history, "order_placed", 10 * DAY, 10**8, late=True)
    assert result is None
    assert later.orders == 7 and later.order_times == history.order_times  # not among the newest


def test_other_event_types_change_nothing() -> None:
    history, _ = walk(monthly(4))
    assert SCORER.score(history, "ticket_opened", 200 * DAY, 1) == (history, None)


@pytest.mark.parametrize(
    "changes", [{"quantile": 0.4}, {"quantile": 1.0}, {"min_orders": 0}, {"amount_prior_sd": 0}]
)
def test_policy_rejects_nonsense(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        AnomalyPolicy(**changes)  # type: ignore[arg-type]


def test_threshold_is_the_quantile_in_decimal_digits() -> None:
    assert AnomalyPolicy(quantile=0.999).threshold == pytest.approx(3.0)


# --- state and determinism -----------------------------------------------------------------------
def _mixed_history(seed: int, n: int = 60) -> Walk:
    rng = random.Random(seed)
    at, events = 0, []
    for _ in range(n):
        at += rng.randint(0, 3_600) if rng.random() < 0.2 else rng.randint(0, 40 * DAY)
        kind = "order_returned" if rng.random() < 0.15 else "order_placed"
        amount = 900_000 if rng.random() < 0.05 else rng.choice([4_000, 5_000, 6_000])
        events.append((kind, at, amount))
    return events


def test_replay_gives_the_same_scores_and_state_even_through_json() -> None:
    events = _mixed_history(3)
    first = walk(events)
    assert walk(events) == first
    assert walk(events, via_json=True) == first
    assert any(r is not None and r.anomalous for r in first[1])  # the history has alerts


@given(st.integers(0, 10_000))
@settings(max_examples=30, deadline=None)
def test_state_round_trips_exactly(seed: int) -> None:
    history, _ = walk(_mixed_history(seed, 20))
    raw = orjson.loads(orjson.dumps(history.to_list()))
    assert PurchaseHistory.from_list(raw) == history


@pytest.mark.parametrize("raw", [None, [], [1, 2], "x", [None] * 10 + ["bad"]])
def test_unreadable_state_is_an_empty_history(raw: object) -> None:
    assert PurchaseHistory.from_list(raw) == PurchaseHistory()


amounts = st.lists(
    st.tuples(st.integers(0, 900 * DAY), st.integers(0, 10_000_000)), min_size=1, max_size=40
)


@given(amounts, st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_decayed_amount_statistics_match_numpy_in_any_order(
    orders: list[tuple[int, int]], rng: random.Random
) -> None:
    shuffled = orders[:]
    rng.shuffle(shuffled)
    history = PurchaseHistory()
    for at, amount in shuffled:
        history = history.add_amount(at, amount, TAU)
    newest = max(at for at, _ in orders)
    as_of = newest + 10 * DAY
    weight, mean, variance = history.amount_stats(as_of, TAU)
    times = np.array([at for at, _ in orders], dtype=np.float64)
    x = np.log1p(np.array([a for _, a in orders], dtype=np.float64))
    w = np.exp(-(as_of - times) / TAU)
    expected_mean = np.average(x, weights=w)
    expected_var = np.average((x - expected_mean) ** 2, weights=w)
    assert history.at == newest
    assert weight == pytest.approx(w.sum(), rel=1e-5, abs=1e-5)
    assert mean == pytest.approx(expected_mean, rel=1e-5, abs=1e-5)
    assert variance == pytest.approx(expected_var, rel=1e-3, abs=1e-4)


def test_only_the_newest_times_are_kept() -> None:
    history, _ = walk(monthly(9))
    assert history.order_times == tuple(k * 30 * DAY for k in range(4, 9))
    assert history.orders == 9 and history.first_order_at == 0


# --- injected anomalies in the simulator ---------------------------------------------------------
def test_simulations_without_anomalies_are_unchanged() -> None:
    config = SimulationConfig(customers=80, days=120, seed=4)
    off = simulate(SimulationConfig(customers=80, days=120, seed=4, anomaly_fraction=0.0))
    assert [m.value for m in simulate(config)] == [m.value for m in off]
    assert off.anomalies == [] and off.anomaly_truth() == []


def test_injected_anomalies_are_valid_events_with_truth() -> None:
    config = SimulationConfig(customers=800, days=365, seed=9, anomaly_fraction=0.02)
    sim = simulate(config)
    truth = sim.anomaly_truth()
    assert {t["kind"] for t in truth} == {"large_order", "order_burst", "return_spree"}
    assert len({t["customer_id"] for t in truth}) == len(truth)
    parser = EventParser()
    by_id = {}
    for message in sim:
        event = parser.parse(message.value, message.kind, NOW)
        by_id[event.event_id] = event
    for item in truth:
        events = [by_id[eid] for eid in item["event_ids"]]
        assert all(e.customer_id == item["customer_id"] for e in events)
        assert [e.type for e in events] == item["event_types"]
    assert [m.value for m in simulate(config)] == [m.value for m in sim]  # seeded


def test_anomaly_fraction_is_validated() -> None:
    with pytest.raises(ConfigError, match="anomaly_fraction"):
        SimulationConfig(anomaly_fraction=1.5)


def test_precision_on_injected_anomalies() -> None:
    events, truth = _histories(3000, 730, 5, 0.01)
    report = evaluate(events, truth, AnomalyPolicy(quantile=0.9999))
    assert report["precision"] >= 0.8
    assert report["recall_by_kind"]["order_burst"] >= 0.8
    assert math.isfinite(report["microseconds_per_event"])


def test_settings_give_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_ANOMALY_QUANTILE", "0.999")
    monkeypatch.setenv("CRM_ANOMALY_MIN_ORDERS", "5")
    s = Settings(_env_file=None)
    policy = AnomalyPolicy(
        quantile=s.anomaly_quantile,
        min_orders=s.anomaly_min_orders,
        amount_tau_days=s.anomaly_amount_tau_days,
    )
    assert s.anomaly_enabled and policy.threshold == pytest.approx(3.0) and policy.min_orders == 5
