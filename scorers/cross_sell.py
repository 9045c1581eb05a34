"""Cross-sell rules, "bought A → also buys B", counted over customers as orders stream in.

The statistics are those of association rules on the one-hot customer × item matrix (an item is
a product category): ``N`` customers with an order, ``count(A)`` customers who bought ``A``,
``count(A, B)`` customers who bought both; ``support = count(A, B) / N``,
``confidence(A → B) = count(A, B) / count(A)``, ``lift = confidence / (count(B) / N)``.

Per order the update only touches what is new for the customer: each item ``A`` of the order
the customer never bought adds 1 to ``count(A)`` and to ``count(A, B)`` (both directions) for
every item ``B`` the customer already had and for every other new item of the order; the first
order with an item adds 1 to ``N``. A repeat purchase, or an order redone, changes nothing.

What is exact and what is bounded (a :class:`CrossSellPolicy` sets the bounds):

- **Exact** when no bound binds: with ``half_life_days = inf``, fewer than
  ``max_items_per_customer`` items per customer and no partner row over
  ``2 * max_partners``, every count equals the batch count on the same orders, whatever their
  order (the counts are sums of ones over a set union).
- **Items per customer**: a customer's set keeps its first ``max_items_per_customer`` items (in
  event-time order; within an order, by name); later new items are ignored for that customer, so
  the statistics are those of the histories truncated to that many items.
- **Partners per item**: ``A``'s row of partners holds at most ``2 * max_partners`` entries;
  when an update takes it past that it is pruned to its ``max_partners`` largest (ties: by
  name). A pruned pair restarts from zero if it comes back, so a stored ``count(A, B)`` is never
  above the true one, equals it for a pair never pruned from ``A``'s row, and is short by at most
  the sum of the counts it had when pruned (each below the ``max_partners`` kept that time).
  ``count(A)`` and ``N`` are never bounded. Confidences can only be under-estimated.
- **Fading**: each customer's contribution to a count decays with a half-life from the moment it
  was earned (their first order for ``N``, their first ``A`` for ``count(A)``, the moment they
  first had both for ``count(A, B)``): ``count = sum 2 ** (-(now - t_earned) / h)``. Counts are
  kept in units of ``2 ** ((t - ref) / h)`` (lazily: no sweep), so ratios — support, confidence,
  lift — need no clock at all and only ``min_count`` is compared at the order's time. When the
  exponent passes 64, ``ref`` moves forward by whole half-lives and every count is multiplied by
  the matching power of two, which is exact in binary floating point.

Examples
--------
>>> policy = CrossSellPolicy(min_confidence=0.5, min_lift=1.0, min_count=2,
...                          half_life_days=math.inf)
>>> stats = CrossSellStats()
>>> had: dict[str, frozenset[str]] = {}
>>> for customer, basket in [("a", {"ink", "paper"}), ("b", {"ink", "paper"}), ("c", {"coffee"})]:
...     update = plan_order(policy, had.get(customer, frozenset()), basket, at=0)
...     apply_order(stats, policy, update)
...     had[customer] = had.get(customer, frozenset()) | set(update.new)
>>> rule = recommend(stats, policy, frozenset(), {"ink"}, at=0)
>>> rule.consequent, rule.confidence, round(rule.lift, 2)
('paper', 1.0, 1.5)
>>> rule.reason()
'100% of buyers of ink also buy paper (lift 1.5)'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "REBASE_AFTER",
    "CrossSellPolicy",
    "CrossSellRule",
    "CrossSellStats",
    "OrderUpdate",
    "apply_order",
    "idempotency_key",
    "plan_order",
    "recommend",
    "rule_of",
    "top_rules",
]

#: Move the reference time once an order's weight exponent passes this many half-lives.
REBASE_AFTER = 64


@dataclass(frozen=True, slots=True)
class CrossSellPolicy:
    """Thresholds of the rule and bounds of the counts (see the module docstring)."""

    min_confidence: float = 0.5
    min_lift: float = 1.1
    min_count: float = 20.0
    half_life_days: float = 180.0  # math.inf: no fading
    max_items_per_customer: int = 64
    max_partners: int = 32

    @property
    def half_life_seconds(self) -> float:
        """The half-life in seconds (inf: no fading)."""
        return self.half_life_days * 86400.0


@dataclass(slots=True)
class CrossSellStats:
    """The population counts, in units of ``2 ** ((t - ref) / h)`` (plain counts if h = inf).

    ``items[A]`` is ``count(A)``; ``partners[A][B]`` is ``count(A, B)`` as kept in A's row.
    """

    ref: float | None = None
    customers: float = 0.0
    items: dict[str, float] = field(default_factory=dict)
    partners: dict[str, dict[str, float]] = field(default_factory=dict)

    def scale(self, policy: CrossSellPolicy, at: float) -> float:
        """What one stored unit is worth at time ``at`` (1.0 without fading)."""
        h = policy.half_life_seconds
        if math.isinf(h) or self.ref is None:
            return 1.0
        return float(2.0 ** (-(at - self.ref) / h))

    def pair(self, a: str, b: str) -> float:
        """``count(A, B)`` as kept in A's row (0 if absent)."""
        return self.partners.get(a, {}).get(b, 0.0)


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """What one order adds: its new items (sorted), the customer's items before it (sorted),
    whether it is the customer's first counted order, and its time."""

    at: float
    new: tuple[str, ...]
    had: tuple[str, ...]
    first: bool

    @property
    def changes(self) -> bool:
        """Whether the order adds anything."""
        return bool(self.new)


@dataclass(frozen=True, slots=True)
class CrossSellRule:
    """``antecedent → consequent`` with its numbers at some time (counts already decayed)."""

    antecedent: str
    consequent: str
    count: float  # customers who bought both
    antecedent_count: float
    consequent_count: float
    customers: float
    confidence: float
    lift: float
    support: float

    @property
    def strength(self) -> float:
        """What one rule is ranked by: lift × confidence."""
        return self.lift * self.confidence

    def reason(self) -> str:
        """The rule in words."""
        return (
            f"{self.confidence:.0%} of buyers of {self.antecedent} also buy {self.consequent} "
            f"(lift {self.lift:.1f})"
        )


def idempotency_key(customer_id: str, antecedent: str, consequent: str) -> str:
    """At most one cross-sell alert per customer and rule."""
    return f"cross_sell:{customer_id}:{antecedent}:{consequent}"


def plan_order(
    policy: CrossSellPolicy, had: frozenset[str], basket: Iterable[str], at: float
) -> OrderUpdate:
    """What an order with items ``basket`` adds for a customer who had ``had`` before it."""
    room = max(0, policy.max_items_per_customer - len(had))
    new = tuple(sorted(set(basket) - had))[:room]
    return OrderUpdate(float(at), new, tuple(sorted(had)), first=not had and bool(new))


def apply_order(stats: CrossSellStats, policy: CrossSellPolicy, update: OrderUpdate) -> None:
    """Fold one order's update into ``stats`` (the Lua script in streams/cross_sell does the
    same operations in the same order, so both give the same floats)."""
    if not update.new:
        return
    weight = _weight(stats, policy, update.at)
    if update.first:
        stats.customers += weight
    touched: list[str] = []
    for i, a in enumerate(update.new):
        stats.items[a] = stats.items.get(a, 0.0) + weight
        for b in (*update.had, *update.new[i + 1 :]):
            _bump(stats, a, b, weight)
            _bump(stats, b, a, weight)
        touched.append(a)
    touched += update.had
    limit = policy.max_partners
    for a in sorted(set(touched)):
        row = stats.partners.get(a)
        if row is not None and len(row) > 2 * limit:
            kept = sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            stats.partners[a] = dict(kept)


def rule_of(
    stats: CrossSellStats, policy: CrossSellPolicy, a: str, b: str, at: float
) -> CrossSellRule:
    """The numbers of ``a → b`` at time ``at``."""
    scale = stats.scale(policy, at)
    both, n_a, n_b = stats.pair(a, b), stats.items.get(a, 0.0), stats.items.get(b, 0.0)
    n = stats.customers
    confidence = both / n_a if n_a > 0 else 0.0
    lift = confidence * n / n_b if n_b > 0 else 0.0
    support = both / n if n > 0 else 0.0
    return CrossSellRule(a, b, both * scale, n_a * scale, n_b * scale, n * scale,
                         confidence, lift, support)  # fmt: skip


def recommend(
    stats: CrossSellStats,
    policy: CrossSellPolicy,
    had: frozenset[str],
    basket: Iterable[str],
    at: float,
    skip: frozenset[tuple[str, str]] = frozenset(),
) -> CrossSellRule | None:
    """The best rule ``A → B`` (by lift × confidence; ties by names) with ``A`` in the order and
    ``B`` never bought, passing the policy's thresholds; None if none does. ``skip``: rules
    already suggested to this customer."""
    bought = set(basket)
    owned = had | bought
    scale = stats.scale(policy, at)
    n, items = stats.customers, stats.items
    best: tuple[float, str, str] | None = None
    for a in sorted(bought):
        n_a = items.get(a, 0.0)
        if n_a <= 0:
            continue
        for b, both in stats.partners.get(a, {}).items():
            # the thresholds of _passes, without building a rule for every partner
            confidence = both / n_a
            if b in owned or confidence < policy.min_confidence or both * scale < policy.min_count:
                continue
            n_b = items.get(b, 0.0)
            lift = confidence * n / n_b if n_b > 0 else 0.0
            if lift < policy.min_lift or (a, b) in skip:
                continue
            candidate = (-lift * confidence, a, b)
            if best is None or candidate < best:
                best = candidate
    return None if best is None else rule_of(stats, policy, best[1], best[2], at)


def top_rules(
    stats: CrossSellStats, policy: CrossSellPolicy, at: float, limit: int = 50
) -> list[CrossSellRule]:
    """Every kept rule passing the thresholds, strongest first (for the query API)."""
    rules = [
        r
        for a, row in stats.partners.items()
        for b in row
        if _passes(r := rule_of(stats, policy, a, b, at), policy)
    ]
    rules.sort(key=lambda r: (-r.strength, r.antecedent, r.consequent))
    return rules[:limit]


def _passes(r: CrossSellRule, policy: CrossSellPolicy) -> bool:
    return (
        r.confidence >= policy.min_confidence
        and r.lift >= policy.min_lift
        and r.count >= policy.min_count
    )


def _weight(stats: CrossSellStats, policy: CrossSellPolicy, at: float) -> float:
    """An order's weight in stored units, moving ``ref`` forward first if needed."""
    h = policy.half_life_seconds
    if math.isinf(h):
        return 1.0
    if stats.ref is None:
        stats.ref = float(math.floor(at))
    exponent = (at - stats.ref) / h
    if exponent > REBASE_AFTER:
        _rebase(stats, math.floor(exponent), h)
        exponent = (at - stats.ref) / h
    return float(2.0**exponent)


def _rebase(stats: CrossSellStats, k: int, h: float) -> None:
    assert stats.ref is not None
    stats.ref = stats.ref + k * h
    factor = 2.0**-k
    stats.customers *= factor
    stats.items = {a: v * factor for a, v in stats.items.items()}
    stats.partners = {
        a: {b: v * factor for b, v in row.items()} for a, row in stats.partners.items()
    }


def _bump(stats: CrossSellStats, a: str, b: str, weight: float) -> None:
    row = stats.partners.setdefault(a, {})
    row[b] = row.get(b, 0.0) + weight
