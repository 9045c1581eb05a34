"""What a simulation run generates: :class:`SimulationConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_core.errors import ConfigError

__all__ = ["SimulationConfig"]

_DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """Size, time window, seed and behaviour of a simulated shop.

    The defaults give a shop whose customers buy about five times a year, spend about $60 per
    order and leave after a purchase with probability ~Beta(1, 7). Fractions are in ``[0, 1]``.

    Attributes
    ----------
    customers:
        Number of customers. About 60% exist at ``start``; the rest are acquired during the window.
    start:
        Start of the simulated window; timezone-aware, normalised to UTC and whole seconds.
        For a live run use :meth:`ending_at` so that no event lies in the future.
    days:
        Length of the window. Nothing is emitted at or after ``end``.
    seed:
        Seed of the ``numpy.random.Generator``; the same config gives byte-identical messages.
    malformed_fraction:
        Extra malformed messages inserted, as a fraction of the number of valid events.
    duplicate_fraction:
        Fraction of valid events that are emitted a second time, verbatim, later in the stream.
    disorder_fraction, max_disorder_seconds:
        Fraction of events that arrive late, each by at most ``max_disorder_seconds``.
    id_prefix:
        Customer ids are ``f"{id_prefix}{index:06d}"``.

    Examples
    --------
    >>> cfg = SimulationConfig(customers=100, days=30, seed=7)
    >>> cfg.end.isoformat()
    '2026-01-31T00:00:00+00:00'
    """

    customers: int = 1000
    start: datetime = _DEFAULT_START
    days: float = 365.0
    seed: int = 0
    malformed_fraction: float = 0.0
    duplicate_fraction: float = 0.0
    disorder_fraction: float = 0.0
    max_disorder_seconds: float = 0.0
    id_prefix: str = "cust-"
    #: Share of customers acquired during the window (their first order is their acquisition).
    new_customer_fraction: float = 0.4
    #: Population mean of the purchase rate while alive (purchases per year).
    mean_purchases_per_year: float = 5.0
    #: Gamma shape of the purchase rate across customers (smaller = more heterogeneous).
    purchase_rate_shape: float = 1.0
    #: Beta(a, b) of the probability to drop out after each purchase.
    dropout_beta: tuple[float, float] = (1.0, 7.0)
    #: Population mean order value, in minor units (cents).
    mean_order_value_minor: float = 6000.0
    #: Gamma shape of customers' mean order value across the population.
    spend_shape: float = 3.0
    #: Gamma shape of one customer's order values around their own mean.
    order_value_shape: float = 4.0
    #: Probability that an order is (partly) returned.
    return_fraction: float = 0.05
    #: Length of the period before drop-out in which churners complain and disengage.
    churn_signal_days: float = 42.0
    #: Fraction of orders that start an injected purchase anomaly (a large order, a burst of
    #: orders or a return spree; see ``Simulation.anomalies``). 0 injects none.
    anomaly_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ConfigError(
                f"SimulationConfig.start={self.start!r} is naive; pass a timezone-aware "
                "datetime such as datetime(2026, 1, 1, tzinfo=UTC)"
            )
        object.__setattr__(self, "start", self.start.astimezone(UTC).replace(microsecond=0))
        if self.customers < 1:
            raise ConfigError(f"customers={self.customers}; simulate at least one customer")
        if self.seed < 0:
            raise ConfigError(f"seed={self.seed}; use a non-negative integer")
        if not self.days > 0:
            raise ConfigError(f"days={self.days}; the window must be longer than zero days")
        for name in (
            "malformed_fraction",
            "duplicate_fraction",
            "disorder_fraction",
            "new_customer_fraction",
            "return_fraction",
            "anomaly_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}={value}; use a fraction between 0 and 1")
        positive = (
            "mean_purchases_per_year",
            "purchase_rate_shape",
            "mean_order_value_minor",
            "spend_shape",
            "order_value_shape",
            "churn_signal_days",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}={getattr(self, name)}; it must be positive")
        if self.max_disorder_seconds < 0:
            raise ConfigError("max_disorder_seconds must be >= 0 (0 disables late arrivals)")
        if min(self.dropout_beta) <= 0:
            raise ConfigError(f"dropout_beta={self.dropout_beta}; both parameters must be > 0")

    @classmethod
    def ending_at(cls, end: datetime, days: float = 365.0, **options: Any) -> SimulationConfig:
        """A config whose window is the ``days`` before ``end`` (e.g. the caller's "now").

        >>> now = datetime(2026, 11, 24, 12, 30, 15, 500, tzinfo=UTC)
        >>> SimulationConfig.ending_at(now, days=10, seed=3).start.isoformat()
        '2026-11-14T12:30:15+00:00'
        """
        return cls(start=end - timedelta(days=days), days=days, **options)

    @property
    def end(self) -> datetime:
        """End of the window (exclusive)."""
        return self.start + timedelta(days=self.days)

    @property
    def horizon_seconds(self) -> float:
        """Length of the window in seconds."""
        return self.days * 86_400.0
