"""Cross-sell rules against a batch count of the same orders (pandas on the one-hot customer ×
category matrix), the bounds and fading they state, and the decision rule."""

from __future__ import annotations

import doctest
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scorers.cross_sell
from crm_core.settings import Settings
from crm_score.simulate import SimulationConfig, simulate
from schemas import Alert, AlertType, PurchaseEvent, example_event_dict
from scorers.cross_sell import (
    CrossSellPolicy,
    CrossSellStats,
    apply_order,
    plan_order,
    recommend,
    rule_of,
    top_rules,
)
from scorers.profile import Profile
from streams.round.messages import Applied
from streams.state.cross_sell_counts import CrossSellRound
from tests.unit.hand_built import Record

Order = tuple[str, float, frozenset[str]]  # customer, epoch seconds, categories
EXACT = CrossSellPolicy(half_life_days=math.inf, max_items_per_customer=10_000, max_partners=10_000)
DAY = 86400.0
SEP = "\x1f"


def simulated_orders(customers: int = 400, days: float = 365, seed: int = 3) -> list[Order]:
    """The order_placed events of a simulated shop, in event-time order."""
    orders = []
    for message in simulate(SimulationConfig(customers=customers, days=days, seed=seed)):
        raw = orjson.loads(message.value)
        if raw["type"] != "order_placed":
            continue
        at = datetime.fromisoformat(raw["event_time"]).timestamp()
        basket = frozenset(item["category"] for item in raw["payload"]["items"])
        orders.append((raw["customer_id"], at, basket))
    orders.sort(key=lambda o: o[1])
    return orders


@pytest.fixture(scope="module")
def orders() -> list[Order]:
    return simulated_orders()


def fold(orders: list[Order], policy: CrossSellPolicy) -> CrossSellStats:
    stats = CrossSellStats()
    had: dict[str, frozenset[str]] = {}
    for customer, at, basket in orders:
        before = had.get(customer, frozenset())
        update = plan_order(policy, before, basket, at)
        apply_order(stats, policy, update)
        had[customer] = before | set(update.new)
    return stats


@dataclass
class Oracle:
    """Batch counts: ``matrix`` is customer × category, 1 where the customer bought it."""

    matrix: pd.DataFrame

    @classmethod
    def of(cls, orders: list[Order], max_items: int | None = None) -> Oracle:
        rows = [(c, item) for c, _, basket in orders for item in basket]
        frame = pd.DataFrame(rows, columns=["customer", "item"]).drop_duplicates()
        if max_items is not None:  # each customer's first items, by time then name
            first: dict[tuple[str, str], tuple[float, str]] = {}
            for c, at, basket in orders:
                for item in sorted(basket):
                    first.setdefault((c, item), (at, item))
            frame["rank"] = [first[(c, i)] for c, i in zip(frame.customer, frame.item, strict=True)]
            frame = frame.sort_values(["customer", "rank"]).groupby("customer").head(max_items)
        return cls(pd.crosstab(frame.customer, frame.item).clip(upper=1))

    @property
    def n(self) -> int:
        return len(self.matrix)

    def items(self) -> dict[str, float]:
        return {a: float(v) for a, v in self.matrix.sum().items()}

    def pairs(self) -> dict[str, dict[str, float]]:
        both = self.matrix.T @ self.matrix
        rows = {
            a: {b: float(both.at[a, b]) for b in both.columns if b != a and both.at[a, b] > 0}
            for a in both.index
        }
        return {a: row for a, row in rows.items() if row}


def test_the_docstring_examples_run() -> None:
    assert doctest.testmod(scorers.cross_sell).failed == 0


def test_counts_equal_the_batch_count_when_no_bound_or_fading_binds(orders: list[Order]) -> None:
    stats = fold(orders, EXACT)
    oracle = Oracle.of(orders)
    assert stats.customers == oracle.n
    assert stats.items == oracle.items()
    assert {a: row for a, row in stats.partners.items() if row} == oracle.pairs()
    # and so support, confidence and lift, for every pair
    m = oracle.matrix
    for a in m.columns:
        for b in m.columns:
            if a == b:
                continue
            r = rule_of(stats, EXACT, a, b, at=0)
            both = float((m[a] & m[b]).sum())
            assert r.support == both / oracle.n
            assert r.confidence == both / m[a].sum()
            assert r.lift == pytest.approx(both / m[a].sum() / (m[b].sum() / oracle.n), rel=1e-12)


def test_the_seed_rule_ink_to_paper_comes_out_of_the_simulated_shop(orders: list[Order]) -> None:
    stats = fold(orders, EXACT)
    r = rule_of(stats, EXACT, "ink", "paper", at=0)
    assert r.confidence > 0.6 and r.lift > 1.0
    assert "of buyers of ink also buy paper" in r.reason()


def test_a_cap_on_items_per_customer_gives_the_counts_of_the_truncated_histories(
    orders: list[Order],
) -> None:
    policy = CrossSellPolicy(half_life_days=math.inf, max_items_per_customer=2, max_partners=10_000)
    stats = fold(orders, policy)
    truncated = Oracle.of(orders, max_items=2)
    assert stats.customers == truncated.n
    assert stats.items == truncated.items()
    assert {a: row for a, row in stats.partners.items() if row} == truncated.pairs()
    assert stats.items != Oracle.of(orders).items()  # the cap did bind


def test_pruned_partner_rows_only_under_count_and_leave_item_counts_exact(
    orders: list[Order],
) -> None:
    policy = CrossSellPolicy(half_life_days=math.inf, max_items_per_customer=10_000, max_partners=2)
    stats = fold(orders, policy)
    oracle = Oracle.of(orders)
    exact = oracle.pairs()
    assert stats.customers == oracle.n and stats.items == oracle.items()
    assert all(len(row) <= 4 for row in stats.partners.values())
    assert any(len(exact[a]) > 4 for a in exact)  # the bound did bind
    for a, row in stats.partners.items():
        for b, count in row.items():
            assert count <= exact[a][b]


def test_faded_counts_are_the_decayed_batch_sums(orders: list[Order]) -> None:
    # 3 days' half-life over a year: the reference time moves forward once
    policy = CrossSellPolicy(half_life_days=3, max_items_per_customer=10_000, max_partners=10_000)
    stats = fold(orders, policy)
    now = orders[-1][1]
    first_order: dict[str, float] = {}
    first_item: dict[tuple[str, str], float] = {}
    for c, at, basket in orders:
        first_order.setdefault(c, at)
        for item in basket:
            first_item.setdefault((c, item), at)
    h = policy.half_life_seconds

    def decayed(times: list[float]) -> float:
        return math.fsum(float(2.0 ** (-(now - t) / h)) for t in times)

    assert stats.ref is not None and stats.ref >= orders[0][1] + 64 * h  # rebased
    scale = stats.scale(policy, now)
    assert stats.customers * scale == pytest.approx(decayed(list(first_order.values())), rel=1e-9)
    by_item: dict[str, list[float]] = {}
    for (_, item), t in first_item.items():
        by_item.setdefault(item, []).append(t)
    for item, times in by_item.items():
        assert stats.items[item] * scale == pytest.approx(decayed(times), rel=1e-9)
    customers_of: dict[str, list[str]] = {}
    for c, item in first_item:
        customers_of.setdefault(c, []).append(item)
    for a in ("ink", "coffee"):
        for b, count in stats.partners[a].items():
            times = [
                max(first_item[(c, a)], first_item[(c, b)])
                for c, items in customers_of.items()
                if a in items and b in items
            ]
            assert count * scale == pytest.approx(decayed(times), rel=1e-9, abs=1e-300)


_baskets = st.frozensets(st.sampled_from("abcdef"), min_size=0, max_size=3)
_orders = st.lists(
    st.tuples(st.sampled_from(["u", "v", "w", "x"]), st.integers(0, 10**6), _baskets), max_size=30
)


@settings(max_examples=200, deadline=None)
@given(_orders, st.randoms(use_true_random=False))
def test_the_order_of_orders_does_not_change_the_counts(
    raw: list[tuple[str, int, frozenset[str]]], rnd: Any
) -> None:
    orders = [(c, float(t), b) for c, t, b in raw]
    shuffled = list(orders)
    rnd.shuffle(shuffled)
    first, second = fold(orders, EXACT), fold(shuffled, EXACT)
    assert first.customers == second.customers
    assert first.items == second.items
    assert first.partners == second.partners
    if orders:
        assert Oracle.of(orders).n == first.customers or not any(b for _, _, b in orders)


# --- the decision rule ------------------------------------------------------------------------
POLICY = CrossSellPolicy(min_confidence=0.6, min_lift=1.5, min_count=5, half_life_days=math.inf)


def seed_shop() -> CrossSellStats:
    """Most ink buyers also buy paper: 8 of 10 (1 of the 10 coffee drinkers buys paper too)."""
    orders: list[Order] = []
    for i in range(10):
        orders.append((f"ink{i}", 0.0, frozenset({"ink", "paper"} if i < 8 else {"ink"})))
    for i in range(10):
        orders.append((f"cof{i}", 0.0, frozenset({"coffee", "paper"} if i < 1 else {"coffee"})))
    return fold(orders, POLICY)


def test_a_cartridge_buyer_who_never_bought_paper_gets_the_rule() -> None:
    stats = seed_shop()
    found = recommend(stats, POLICY, frozenset({"coffee"}), {"ink"}, at=0)
    assert found is not None
    assert (found.antecedent, found.consequent) == ("ink", "paper")
    assert found.confidence == 0.8 and found.count == 8
    assert found.lift == pytest.approx(0.8 / (9 / 20))
    assert found.reason() == "80% of buyers of ink also buy paper (lift 1.8)"


def test_no_rule_when_the_customer_has_the_consequent_or_a_threshold_fails() -> None:
    stats = seed_shop()
    assert recommend(stats, POLICY, frozenset({"paper"}), {"ink"}, at=0) is None
    assert (
        recommend(stats, POLICY, frozenset(), {"coffee"}, at=0) is None
    )  # coffee → paper: confidence 0.1
    strict = CrossSellPolicy(min_confidence=0.6, min_lift=1.5, min_count=9)
    assert recommend(stats, strict, frozenset(), {"ink"}, at=0) is None  # only 8 bought both
    ranked = [(r.antecedent, r.consequent) for r in top_rules(stats, POLICY, at=0)]
    assert ranked == [("paper", "ink"), ("ink", "paper")]  # lift equal, confidence 8/9 > 8/10


def _order(customer: str, event_id: str, at: float, *categories: str) -> Applied:
    raw = example_event_dict("order_placed")
    items = [
        {"sku": f"{c}-1", "category": c, "quantity": 1, "unit_price_minor": 100} for c in categories
    ]
    raw.update(
        customer_id=customer,
        event_id=event_id,
        event_time=datetime.fromtimestamp(at, UTC).isoformat(),
    )
    raw["payload"] = {**raw["payload"], "items": items, "order_id": f"o-{event_id}"}
    return Applied(Record(partition=2), PurchaseEvent.model_validate(raw), Profile(), at, False)


def _stored(stats: CrossSellStats, reads: Any) -> list[dict[bytes | str, bytes | str]]:
    """What Redis would answer to the round's reads, for ``stats`` and new customers."""
    meta: dict[bytes | str, bytes | str] = {b"n": repr(stats.customers).encode()}
    items: dict[bytes | str, bytes | str] = {
        a.encode(): repr(v).encode() for a, v in stats.items.items()
    }
    rows: list[dict[bytes | str, bytes | str]] = [
        {b.encode(): repr(v).encode() for b, v in stats.partners.get(a, {}).items()}
        for a in reads.items
    ]
    return [meta, items, *rows, *({} for _ in reads.customers)]


def test_a_round_drafts_the_alert_once_per_customer_and_rule_and_one_per_order() -> None:
    stats = seed_shop()
    xsell = CrossSellRound("t", POLICY)
    applied = [
        _order("c", "e1", 100.0, "ink"),  # -> ink → paper
        _order("c", "e2", 200.0, "ink", "coffee"),  # ink → paper already suggested
        _order("d", "e3", 300.0, "coffee"),  # coffee → paper: confidence 0.1
    ]
    reads = xsell.read_keys(a.event for a in applied)
    assert reads.items == ("coffee", "ink") and reads.customers == ("c", "d")
    decision = xsell.decide(reads, _stored(stats, reads), applied)

    ((customer, key, message),) = decision.alerts()
    assert (customer, key, message.partition, message.key) == (
        "c",
        "cross_sell:c:ink:paper",
        2,
        b"c",
    )
    alert = Alert.model_validate_json(message.value)
    assert alert.alert_type is AlertType.CROSS_SELL
    assert alert.reasons == ["80% of buyers of ink also buy paper (lift 1.8)"]
    assert alert.details["confidence"] == 0.8 and alert.details["order_id"] == "o-e1"
    assert alert.event_time == datetime.fromtimestamp(100, UTC)
    # the customers' new items and the suggestion are written; only new items are counted
    assert decision.customer_fields == {
        "c": {"c:ink": 100, f"s:ink{SEP}paper": 100, "c:coffee": 200, "d": f"200.0{SEP}e2"},
        "d": {"c:coffee": 300, "d": f"300.0{SEP}e3"},
    }
    assert [(u.new, u.had, u.first) for _, u in decision.orders] == [
        (("ink",), (), True),
        (("coffee",), ("ink",), False),
        (("coffee",), (), True),
    ]


def test_the_next_round_sees_the_last_rounds_customers_even_if_its_save_was_not_read() -> None:
    stats = seed_shop()
    xsell = CrossSellRound("t", POLICY)
    first = [_order("c", "e1", 100.0, "ink")]
    reads = xsell.read_keys(a.event for a in first)
    assert len(xsell.decide(reads, _stored(stats, reads), first).drafts) == 1
    again = [_order("c", "e2", 200.0, "ink")]
    reads = xsell.read_keys(a.event for a in again)
    decision = xsell.decide(reads, _stored(stats, reads), again)  # c read as if new
    assert decision.drafts == [] and decision.orders == []


def test_the_round_takes_its_policy_from_settings() -> None:
    s = Settings(cross_sell_min_lift=2.5, cross_sell_half_life_days=math.inf)
    xsell = CrossSellRound.from_settings(s)
    assert xsell.policy.min_lift == 2.5 and math.isinf(xsell.policy.half_life_seconds)
    assert xsell.customer_key("c-1") == "crm:{c-1}:xc" and xsell.meta_key == "crm:{xsell}:m"


@pytest.mark.parametrize("when_not", [False, True])
def test_a_customer_who_unsubscribed_gets_no_cross_sell_alert_unless_asked(when_not: bool) -> None:
    stats = seed_shop()
    xsell = CrossSellRound("t", POLICY, when_not_contactable=when_not)
    order = _order("c", "e1", 100.0, "ink")
    applied = [order._replace(profile=Profile(unsubscribes=1, last_unsubscribe_at=50))]
    reads = xsell.read_keys(a.event for a in applied)
    decision = xsell.decide(reads, _stored(stats, reads), applied)

    assert len(decision.drafts) == 1  # decided and remembered all the same: counted once
    assert decision.customer_fields["c"][f"s:ink{SEP}paper"] == 100
    published = [Alert.model_validate_json(m.value) for _, _, m in decision.alerts()]
    assert [(a.alert_type, a.contactable) for a in published] == (
        [(AlertType.CROSS_SELL, False)] if when_not else []
    )
