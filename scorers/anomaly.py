"""Purchase anomalies: each order and return against the customer's own history, in words.

Three signals, each a tail probability under a small Bayesian model of *this* customer, so a
decision needs no population state (nothing to share across workers or rebuild at a restart):

- **amount**: the log of an order's amount against a time-decayed mean and variance of the
  customer's earlier log amounts (Student-t predictive, the variance shrunk towards a prior so
  three similar orders do not make every fourth one "unusual"); only large orders count;
- **burst**: the gaps back to the customer's last few orders against their usual rate (a
  Gamma posterior from their orders so far, negative-binomial predictive): "5 orders in
  2 days, usually 1 a month";
- **returns**: returns since each of the last few orders against the customer's usual return
  rate (a Beta posterior, binomial tail): "3 of the last 4 orders returned".

The score is ``-log10`` of the smallest p-value (each signal corrected for the windows it
tries); an event is anomalous when that p-value is under ``1 - quantile``, i.e. beyond the
customer's own ``quantile``. Nothing is scored before ``min_orders`` orders. An order flagged
for its amount does not enter the amount statistics, so one outlier does not mask the next.

State is :class:`PurchaseHistory`, a few numbers per customer kept with the profile. Its sums
decay with event time like :class:`scorers.churn_features.RecentActivity` (adding an older
event adds its decayed weight), and its counts and recent times are order-free, so a late
event only needs to be added. Money is aggregated in float here (log minor units), as in every
scorer; amounts are in the base currency.

Examples
--------
>>> scorer = AnomalyScorer()
>>> history, day = PurchaseHistory(), 86_400
>>> for k in range(12):  # a year of monthly orders of 150.00
...     history, _ = scorer.score(history, "order_placed", k * 30 * day, 15_000)
>>> history, result = scorer.score(history, "order_placed", 345 * day, 124_000)
>>> result.anomalous, result.reasons
(True, ["order of 1,240.00 is 8.3x this customer's typical 150.00"])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

from scipy import special

from schemas.outputs import Severity
from scorers.purchase_history import PurchaseHistory

__all__ = [
    "AnomalyPolicy",
    "AnomalyScore",
    "AnomalyScorer",
    "PurchaseHistory",
]

_DAY = 86_400.0
_MONTH_DAYS = 30.44
#: How many recent order and return times the state keeps.
RECENT_ORDERS = 5
RECENT_RETURNS = 4

Signal = Literal["amount", "burst", "returns"]


@dataclass(frozen=True, slots=True)
class AnomalyPolicy:
    """Thresholds and priors of the purchase-anomaly scorer (the first four from settings).

    ``quantile``: an event is anomalous beyond the customer's own ``quantile`` (p-value under
    ``1 - quantile``). ``min_orders``: orders a customer needs before anything is scored.
    ``amount_tau_days``: time constant of the decayed amount statistics. ``amount_prior_sd``
    and ``amount_prior_weight``: the spread of log amounts assumed before any data (0.6 is
    about +-80%) and how many orders it counts as. ``prior_orders_per_year`` and
    ``prior_rate_shape``: the Gamma prior of a customer's order rate. ``burst_min_span_days``:
    orders closer than this count as this far apart. ``prior_return_rate`` and
    ``prior_return_weight``: the Beta prior of the return rate and its weight in orders.
    """

    quantile: float = 0.9999
    min_orders: int = 3
    amount_tau_days: float = 365.0
    amount_prior_sd: float = 0.6
    amount_prior_weight: float = 3.0
    prior_orders_per_year: float = 5.0
    prior_rate_shape: float = 1.0
    burst_min_span_days: float = 1.0
    prior_return_rate: float = 0.05
    prior_return_weight: float = 20.0

    def __post_init__(self) -> None:
        if not 0.5 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0.5, 1), got {self.quantile}")
        if self.min_orders < 1:
            raise ValueError(f"min_orders must be >= 1, got {self.min_orders}")
        if not 0 < self.prior_return_rate < 1:
            raise ValueError(f"prior_return_rate must be in (0, 1), got {self.prior_return_rate}")
        positive = (
            "amount_tau_days", "amount_prior_sd", "amount_prior_weight", "prior_orders_per_year",
            "prior_rate_shape", "burst_min_span_days", "prior_return_weight",
        )  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def threshold(self) -> float:
        """The score above which an event is anomalous: ``-log10(1 - quantile)``."""
        return -math.log10(1.0 - self.quantile)


class AnomalyScore(NamedTuple):
    """The verdict on one order or return.

    ``score`` is ``-log10(p_value)``; ``p_values`` holds each signal scored, ``reasons`` the
    unusual ones in words (most unusual first) and ``facts`` the numbers behind them.
    """

    score: float
    p_value: float
    anomalous: bool
    p_values: dict[str, float]
    reasons: list[str]
    facts: dict[str, float | int]

    @property
    def severity(self) -> Severity:
        """``critical`` for an amount anomaly (money at stake), else ``warning``."""
        return Severity.CRITICAL if "amount_ratio" in self.facts else Severity.WARNING

    def details(self) -> dict[str, object]:
        """The alert's ``details``: score, p-values per signal and the facts."""
        return {
            "score": round(self.score, 3),
            "p_values": {k: float(f"{v:.3g}") for k, v in self.p_values.items()},
            **self.facts,
        }


class AnomalyScorer:
    """Scores purchase events against each customer's :class:`PurchaseHistory` (pure)."""

    def __init__(self, policy: AnomalyPolicy | None = None) -> None:
        self.policy = policy = policy or AnomalyPolicy()
        self._alpha = 1.0 - policy.quantile
        self._tau = policy.amount_tau_days * _DAY
        self._rate_b0 = policy.prior_rate_shape / (policy.prior_orders_per_year / 365.25)
        self._ret_a0 = policy.prior_return_rate * policy.prior_return_weight
        self._ret_b0 = (1.0 - policy.prior_return_rate) * policy.prior_return_weight

    def score(
        self,
        history: PurchaseHistory,
        event_type: str,
        at: int,
        amount_minor: int,
        *,
        late: bool = False,
    ) -> tuple[PurchaseHistory, AnomalyScore | None]:
        """The history after one purchase event at epoch second ``at``, and its verdict.

        ``event_type`` is ``order_placed`` or ``order_returned`` (anything else changes
        nothing); ``amount_minor`` is in the base currency. The verdict is ``None`` for a
        ``late`` event (added, never scored: alerts are not fired for the past) and before the
        customer has ``min_orders`` orders. Events must come in event-time order, except late.
        """
        if event_type == "order_placed":
            return self._order(history, at, amount_minor, late)
        if event_type == "order_returned":
            return self._return(history, at, late)
        return history, None

    # --- one event -----------------------------------------------------------------------------
    def _order(
        self, history: PurchaseHistory, at: int, amount: int, late: bool
    ) -> tuple[PurchaseHistory, AnomalyScore | None]:
        result = None
        if not late and history.orders >= self.policy.min_orders:
            facts: dict[str, float | int] = {}
            reasons: list[tuple[float, str]] = []
            p_amount, text, amount_facts = self._amount(history, at, amount)
            p_values = {"amount": p_amount}
            if p_amount < self._alpha:
                reasons.append((p_amount, text))
                facts.update(amount_facts)
            p_burst, text, burst_facts = self._burst(history, at)
            if p_burst is not None:
                p_values["burst"] = p_burst
                if p_burst < self._alpha:
                    reasons.append((p_burst, text))
                    facts.update(burst_facts)
            result = self._verdict(p_values, reasons, facts)
        flagged = result is not None and result.p_values["amount"] < self._alpha
        if not flagged:
            history = history.add_amount(at, amount, self._tau)
        first = history.first_order_at
        burst = result is not None and "orders_in_span" in result.facts
        history = history._replace(
            orders=history.orders + 1,
            order_times=_newest(history.order_times, at, RECENT_ORDERS),
            first_order_at=at if first is None else min(first, at),
            burst_alerted_at=at if burst else history.burst_alerted_at,
        )
        return history, result

    def _return(
        self, history: PurchaseHistory, at: int, late: bool
    ) -> tuple[PurchaseHistory, AnomalyScore | None]:
        result = None
        if not late and history.orders >= self.policy.min_orders:
            p, text, facts = self._returns(history, at)
            if p is not None:
                alarm = p < self._alpha
                reasons = [(p, text)] if alarm else []
                result = self._verdict({"returns": p}, reasons, facts if alarm else {})
        history = history._replace(
            returns=history.returns + 1,
            return_times=_newest(history.return_times, at, RECENT_RETURNS),
            returns_alerted_at=at if result and result.anomalous else history.returns_alerted_at,
        )
        return history, result

    def _verdict(
        self,
        p_values: dict[str, float],
        reasons: list[tuple[float, str]],
        facts: dict[str, float | int],
    ) -> AnomalyScore:
        p = min(p_values.values())
        score = -math.log10(max(p, 1e-300))
        reasons.sort(key=lambda r: r[0])
        return AnomalyScore(score, p, p < self._alpha, p_values, [t for _, t in reasons], facts)

    # --- the three signals ---------------------------------------------------------------------
    def _amount(
        self, history: PurchaseHistory, at: int, amount: int
    ) -> tuple[float, str, dict[str, float | int]]:
        """Upper-tail p-value of the order's log amount (Student-t predictive)."""
        policy = self.policy
        weight, mean, variance = history.amount_stats(at, self._tau)
        nu0, sd0 = policy.amount_prior_weight, policy.amount_prior_sd
        s2 = (nu0 * sd0 * sd0 + weight * variance) / (nu0 + weight)
        scale = math.sqrt(s2 * (1.0 + 1.0 / max(weight, 1e-9)))
        x = math.log1p(max(0, amount))
        t = (x - mean) / scale
        p = float(special.stdtr(nu0 + weight - 1.0 if weight > 1.0 else nu0, -t))
        typical = math.expm1(mean)
        ratio = (amount / typical) if typical > 0 else math.inf
        text = (
            f"order of {amount / 100:,.2f} is {ratio:.1f}x this customer's typical "
            f"{typical / 100:,.2f}"
        )
        facts: dict[str, float | int] = {
            "amount_minor": amount,
            "typical_amount_minor": round(typical),
            "amount_ratio": round(ratio, 2),
        }
        return p, text, facts

    def _burst(
        self, history: PurchaseHistory, at: int
    ) -> tuple[float | None, str, dict[str, float | int]]:
        """Smallest p-value of "j earlier orders within the span back to the j-th last one"."""
        policy = self.policy
        first = history.first_order_at
        alerted = history.burst_alerted_at
        # Orders up to the last burst alert were alerted on: a new burst starts after it.
        times = [t for t in history.order_times if t <= at and (alerted is None or t > alerted)]
        n = history.orders
        best: tuple[float, int, float, float] | None = None
        tried = 0
        min_span = policy.burst_min_span_days
        for j in range(1, min(len(times), n - 1) + 1):
            t_j = times[-j]
            span = max((at - t_j) / _DAY, min_span)
            exposure = max(0.0, (t_j - (first if first is not None else t_j)) / _DAY)
            shape = policy.prior_rate_shape + (n - j - 1)
            rate_b = self._rate_b0 + exposure
            p = float(special.betainc(j, shape, span / (rate_b + span)))
            tried += 1
            if best is None or p < best[0]:
                best = (p, j, (at - t_j) / _DAY, shape / rate_b)
        if best is None:
            return None, "", {}
        p, j, span_days, rate = best
        p = min(1.0, p * tried)
        text = f"{j + 1} orders in {_span_words(span_days)}, usually {_rate_words(rate)}"
        facts: dict[str, float | int] = {
            "orders_in_span": j + 1,
            "span_days": round(span_days, 2),
            "usual_orders_per_month": round(rate * _MONTH_DAYS, 3),
        }
        return p, text, facts

    def _returns(
        self, history: PurchaseHistory, at: int
    ) -> tuple[float | None, str, dict[str, float | int]]:
        """Smallest p-value of "k returns since the N-th last order" (binomial tail)."""
        alerted = history.returns_alerted_at
        # Returns up to the last returns alert were alerted on: they do not count again.
        recent = [r for r in history.return_times if alerted is None or r > alerted]
        orders = history.order_times
        best: tuple[float, int, int, float] | None = None
        tried = 0
        for n in range(2, len(orders) + 1):
            since = orders[-n]
            k = min(n, 1 + sum(1 for r in recent if since <= r <= at))
            before_returns = max(0, history.returns - (k - 1))
            before_orders = max(0, history.orders - n)
            p0 = (self._ret_a0 + before_returns) / (self._ret_a0 + self._ret_b0 + before_orders)
            p = float(special.betainc(k, n - k + 1, p0))  # P(Binomial(n, p0) >= k)
            tried += 1
            if best is None or p < best[0]:
                best = (p, k, n, p0)
        if best is None:
            return None, "", {}
        p, k, n, p0 = best
        p = min(1.0, p * tried)
        text = f"{k} of the last {n} orders returned, usually 1 in {max(1, round(1 / p0))}"
        facts: dict[str, float | int] = {
            "returns_in_window": k,
            "orders_in_window": n,
            "usual_return_rate": round(p0, 4),
        }
        return p, text, facts


def _newest(times: tuple[int, ...], at: int, keep: int) -> tuple[int, ...]:
    return tuple(sorted((*times, at))[-keep:])


def _span_words(days: float) -> str:
    if days < 1.0:
        hours = max(1, round(days * 24))
        return f"{hours} hour{'s' if hours != 1 else ''}"
    whole = round(days)
    return f"{whole} day{'s' if whole != 1 else ''}"


def _rate_words(per_day: float) -> str:
    per_month = per_day * _MONTH_DAYS
    if per_month >= 1.5:
        return f"{per_month:.0f} a month"
    if per_month >= 0.75:
        return "1 a month"
    months = 1.0 / per_month
    if months < 12:
        return f"1 every {months:.0f} months"
    return f"1 every {months / 12:.1f} years"
