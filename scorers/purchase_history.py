"""What the anomaly scorer (:mod:`scorers.anomaly`) remembers about one customer: decayed sums
of the log order amounts, counts, and the newest few order and return times. Kept with the
profile, so a few numbers; the sums decay with event time (adding an older order adds its
decayed weight), so orders may come in any order."""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["PurchaseHistory"]

_DECIMALS = 6  # stored sums keep 6 decimals (they live in every customer's state)


class PurchaseHistory(NamedTuple):
    """What the anomaly scorer remembers about one customer (a few numbers).

    ``weight``, ``log_sum`` and ``log_sq_sum`` are sums over orders of ``w``, ``w * x`` and
    ``w * x**2`` where ``x = log(1 + amount_minor)`` and ``w = exp(-age / amount_tau_days)``
    at ``at`` (orders flagged for their amount are left out). ``orders`` and ``returns`` count
    every order and return; ``order_times`` and ``return_times`` are the newest few, ascending;
    ``burst_alerted_at`` and ``returns_alerted_at`` the last alert of each signal.
    """

    at: int | None = None
    weight: float = 0.0
    log_sum: float = 0.0
    log_sq_sum: float = 0.0
    orders: int = 0
    returns: int = 0
    first_order_at: int | None = None
    order_times: tuple[int, ...] = ()
    return_times: tuple[int, ...] = ()
    burst_alerted_at: int | None = None
    returns_alerted_at: int | None = None

    def add_amount(self, at: int, amount_minor: int, tau_seconds: float) -> PurchaseHistory:
        """The amount sums with one more order at epoch second ``at`` (any order of arrival)."""
        x = math.log1p(max(0, amount_minor))
        if self.at is None or at >= self.at:  # decay the sums to ``at``, add weight 1
            ref, decay, g = at, _decay(self.at, at, tau_seconds), 1.0
        else:  # an older order: add its decayed weight
            ref, decay, g = self.at, 1.0, math.exp(-(self.at - at) / tau_seconds)
        return self._replace(
            at=ref,
            weight=round(self.weight * decay + g, _DECIMALS),
            log_sum=round(self.log_sum * decay + g * x, _DECIMALS),
            log_sq_sum=round(self.log_sq_sum * decay + g * x * x, _DECIMALS),
        )

    def amount_stats(self, at: int, tau_seconds: float) -> tuple[float, float, float]:
        """(decayed weight, mean, variance) of the log amounts as seen at ``at``."""
        if self.at is None or self.weight <= 0:
            return 0.0, 0.0, 0.0
        f = math.exp(-max(0, at - self.at) / tau_seconds)
        mean = self.log_sum / self.weight
        variance = max(0.0, self.log_sq_sum / self.weight - mean * mean)
        return self.weight * f, mean, variance

    def to_list(self) -> list[object]:
        """JSON-friendly form; :meth:`from_list` reads it back exactly."""
        values: list[object] = list(self)
        values[7], values[8] = list(self.order_times), list(self.return_times)
        return values

    @classmethod
    def from_list(cls, raw: object) -> PurchaseHistory:
        """Read :meth:`to_list` output; anything else is an empty history."""
        if not isinstance(raw, list) or len(raw) != len(cls._fields):
            return cls()
        try:
            at, w, s1, s2, orders, returns, first, times, rtimes, burst, ret = raw
            return cls(
                _opt_int(at), float(w), float(s1), float(s2), int(orders), int(returns),
                _opt_int(first), tuple(int(t) for t in times), tuple(int(t) for t in rtimes),
                _opt_int(burst), _opt_int(ret),
            )  # fmt: skip
        except (TypeError, ValueError):
            return cls()


def _decay(since: int | None, at: int, tau_seconds: float) -> float:
    return 1.0 if since is None else math.exp(-(at - since) / tau_seconds)


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"not an epoch second: {value!r}")
