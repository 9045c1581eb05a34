"""P(alive), expected purchases and CLV of one profile, from fitted purchase and spend models.

Time is in weeks, the unit the models are fitted in. As the models define them, all orders of
one UTC day are one *transaction* (:attr:`Profile.transactions`): a customer's repeat purchases
are ``x = transactions - 1``, ``t_x`` runs from the first to the last order and ``T`` from the
first order to ``as_of``. Gamma-Gamma sees ``(x, mean value of the repeat transactions)``: net
spend of every transaction after the first day's, with returns netted pro rata
(:attr:`Profile.repeat_net_minor`), in major units of the base currency. Money is aggregated in
float inside this scorer; CLV comes back in minor units.

Scores come from the model's :class:`~scorers.purchase_models.PurchaseModel`: BG/NBD, or the
dropout model chosen by ``CRM_DROPOUT_MODEL`` (Pareto/NBD by default, MBG/NBD), which lets
one-time buyers drop out too. BG/NBD is fitted every time as well (reported by ``crm-score fit``).

CLV (Fader, Hardie & Lee 2005, "RFM and CLV") is the Gamma-Gamma expected spend per transaction
times the discounted expected residual transactions (DERT) over ``clv_horizon_weeks``:
``sum_k (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k`` over weekly periods ``k`` at the weekly rate ``d``
equivalent to ``discount_rate_annual`` (the paper sums to infinity in continuous time; a finite
horizon keeps a customer's value to what a business plans for). A customer without repeat
transactions gets the population's mean spend; one whose refunds reach their orders gets 0.

Examples
--------
>>> from datetime import UTC, datetime
>>> p = Profile(first_purchase_at=0, last_purchase_at=7 * 86400, orders=3, purchase_days=3,
...             gross_minor=9000, first_day_minor=3000)
>>> summary_of(p, datetime(1970, 1, 29, tzinfo=UTC))
CustomerSummary(x=2, t_x=1.0, T=4.0, mean_value=30.0)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import orjson

from crm_core.errors import ModelError
from scorers._special import FloatArray
from scorers.bgnbd import BgNbdParams, fit_bgnbd
from scorers.gamma_gamma import GammaGammaParams, expected_average_value, fit_gamma_gamma
from scorers.profile import Profile
from scorers.purchase_models import PurchaseModel, check_fit, fit_purchase_model

__all__ = [
    "DEFAULT_DROPOUT",
    "MIN_CUSTOMERS",
    "MIN_REPEAT_CUSTOMERS",
    "CustomerSummary",
    "ProbabilityModel",
    "ProbabilityScores",
    "fit_from_profiles",
    "summary_of",
]

_WEEK = 7 * 86_400.0
_WEEKS_PER_YEAR = 365.25 / 7
_MAX_TIMER_WEEKS = 100 * _WEEKS_PER_YEAR  # later than this is "never" (and beyond datetime)
_GRID = np.geomspace(1.0 / 168, _MAX_TIMER_WEEKS, 96)  # 1 hour .. 100 years, 15% apart
#: Fewest customers with an order, and of them with a repeat order, that a fit accepts.
MIN_CUSTOMERS = 20
MIN_REPEAT_CUSTOMERS = 5
_FORMAT = "probability-model/1"
#: The dropout model scores come from unless configured: Pareto/NBD predicted CDNOW's holdout
#: best (README, "Model quality").
DEFAULT_DROPOUT = "pareto_nbd"


class CustomerSummary(NamedTuple):
    """``x`` repeat transactions, last at ``t_x``, observed to ``T`` (weeks since the first)."""

    x: int
    t_x: float
    T: float
    mean_value: float  # net spend per repeat transaction, major units, >= 0 (0 when x == 0)


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"as_of must be timezone-aware (UTC), got naive {t.isoformat()}")
    return t.astimezone(UTC)


def summary_of(
    profile: Profile, as_of: datetime, *, minor_per_major: int = 100
) -> CustomerSummary | None:
    """The BG/NBD summary of a profile at ``as_of``; ``None`` for a customer without orders.

    ``T`` is at least ``t_x`` (a purchase later than ``as_of`` is a late view of the past).

    >>> from datetime import UTC, datetime
    >>> summary_of(Profile(), datetime(2026, 1, 1, tzinfo=UTC)) is None
    True
    """
    first = profile.first_purchase_at
    if profile.orders <= 0 or first is None:
        return None
    last = first if profile.last_purchase_at is None else profile.last_purchase_at
    x = profile.transactions - 1
    t_x = max(0.0, (last - first) / _WEEK) if x > 0 else 0.0
    big_t = max(t_x, (_utc(as_of).timestamp() - first) / _WEEK)
    mean = profile.repeat_net_minor / x / minor_per_major if x > 0 else 0.0
    return CustomerSummary(x, t_x, big_t, mean)


@dataclass(frozen=True, slots=True)
class ProbabilityScores:
    """What the fitted models say about one customer at one time.

    ``next_purchase_at`` is when one more purchase is expected (``None``: not within 100
    years); ``clv`` is the discounted expected net spend over the model's horizon, minor units
    (``None`` without a usable Gamma-Gamma fit).
    """

    p_alive: float
    expected_purchases_30d: float
    expected_purchases_90d: float
    next_purchase_at: datetime | None
    clv: float | None


@dataclass(frozen=True, slots=True)
class ProbabilityModel:
    """Fitted BG/NBD (+ Gamma-Gamma) parameters and the settings scores are computed with.

    ``fitted_at`` is the as-of time of the data (not the wall clock); ``version`` is the
    registry version the model was published as (``""`` before publishing).
    """

    version: str
    fitted_at: datetime
    bgnbd: BgNbdParams
    gamma_gamma: GammaGammaParams | None
    n_customers: int
    log_likelihood: float
    converged: bool = True
    discount_rate_annual: float = 0.10
    clv_horizon_weeks: int = 52
    minor_per_major: int = 100
    #: CLV (minor units) at or above which a customer is in the top value tier, scored at their
    #: last purchase; set by the fit from the population (None: no tier, no at-risk alerts).
    high_value_clv: float | None = None
    #: The dropout model scores come from (None: the BG/NBD above).
    purchases: PurchaseModel | None = None

    @property
    def scoring(self) -> PurchaseModel:
        """The purchase model P(alive), expected purchases and CLV come from."""
        if self.purchases is not None:
            return self.purchases
        return PurchaseModel("bgnbd", self.bgnbd, self.log_likelihood)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.discount_rate_annual) and self.discount_rate_annual > -1):
            raise ModelError(f"discount_rate_annual={self.discount_rate_annual!r} must be > -1.")
        if self.clv_horizon_weeks < 1 or self.minor_per_major < 1:
            raise ModelError("clv_horizon_weeks and minor_per_major must be >= 1.")

    def summary(self, profile: Profile, as_of: datetime) -> CustomerSummary | None:
        """:func:`summary_of` with this model's currency unit."""
        return summary_of(profile, as_of, minor_per_major=self.minor_per_major)

    def score(self, profile: Profile, as_of: datetime) -> ProbabilityScores | None:
        """Scores of ``profile`` at ``as_of``; ``None`` for a customer without orders.

        >>> from datetime import UTC, datetime
        >>> model = ProbabilityModel(
        ...     "1", datetime(2026, 1, 1, tzinfo=UTC), BgNbdParams(0.243, 4.414, 0.793, 2.426),
        ...     GammaGammaParams(6.25, 3.74, 15.44), n_customers=2357, log_likelihood=-9582.4,
        ... )
        >>> p = Profile(first_purchase_at=0, last_purchase_at=30 * 7 * 86400, orders=3,
        ...             gross_minor=6000)
        >>> s = model.score(p, datetime(1970, 10, 1, tzinfo=UTC))
        >>> round(s.p_alive, 3), s.expected_purchases_90d > s.expected_purchases_30d
        (0.72, True)
        """
        s = self.summary(profile, as_of)
        if s is None:
            return None
        # One vectorised evaluation of E[purchases in (T, T+t]] for every t needed.
        horizon = self.clv_horizon_weeks
        ts = np.concatenate(([30.0 / 7, 90.0 / 7], np.arange(horizon + 1.0), _GRID))
        model = self.scoring
        expected = model.expected_purchases(ts, s.x, s.t_x, s.T)
        weeks = self._weeks_to_next(s, expected[horizon + 3 :])
        return ProbabilityScores(
            p_alive=float(model.p_alive(s.x, s.t_x, s.T)),
            expected_purchases_30d=float(expected[0]),
            expected_purchases_90d=float(expected[1]),
            next_purchase_at=None if weeks is None else _utc(as_of) + timedelta(weeks=weeks),
            clv=self._clv(s, expected[2 : horizon + 3], profile.monetary_minor > 0),
        )

    def _weeks_to_next(self, s: CustomerSummary, on_grid: FloatArray) -> float | None:
        """Where E[purchases] reaches 1: bracket it on the grid, interpolate on a fine one
        (within ~1e-6 of scorers.bgnbd.expected_next_purchase_time, at a fraction of the cost)."""
        i = int(np.searchsorted(on_grid, 1.0))
        if i == len(_GRID):
            return None  # not within 100 years, or never
        fine = np.linspace(_GRID[i - 1] if i else 0.0, _GRID[i], 48)
        expected = self.scoring.expected_purchases(fine, s.x, s.t_x, s.T)
        return float(np.interp(1.0, expected, fine))

    def _clv(self, s: CustomerSummary, cumulative: FloatArray, spent: bool) -> float | None:
        """Expected spend per transaction times DERT over weekly periods (module doc)."""
        if self.gamma_gamma is None:
            return None
        if not spent:
            return 0.0  # refunded everything they bought
        try:
            own_mean = max(s.mean_value, 1e-12) if s.x > 0 else 0.0
            value = expected_average_value(self.gamma_gamma, s.x, own_mean)
        except ModelError:
            return None  # q <= 1: the population mean spend does not exist
        weekly_rate = (1.0 + self.discount_rate_annual) ** (1.0 / _WEEKS_PER_YEAR) - 1.0
        discount = (1.0 + weekly_rate) ** -np.arange(1.0, self.clv_horizon_weeks + 1)
        return max(0.0, value * float(np.diff(cumulative) @ discount) * self.minor_per_major)

    def p_alive_below_at(self, profile: Profile, threshold: float) -> datetime | None:
        """When P(alive) falls under ``threshold`` if no purchase comes (for a timer).

        May be in the past (already below); ``None`` without a repeat purchase (P(alive)
        stays 1 in BG/NBD) or when it is more than 100 years away.

        >>> from datetime import UTC, datetime
        >>> model = ProbabilityModel(
        ...     "1", datetime(2026, 1, 1, tzinfo=UTC), BgNbdParams(0.243, 4.414, 0.793, 2.426),
        ...     None, n_customers=2357, log_likelihood=-9582.4,
        ... )
        >>> p = Profile(first_purchase_at=0, last_purchase_at=30 * 7 * 86400, orders=3)
        >>> model.p_alive_below_at(p, 0.5).date()
        datetime.date(1971, 3, 8)
        """
        epoch = self.p_alive_crossing_epoch(profile, threshold)
        return None if epoch is None else datetime.fromtimestamp(epoch, UTC)

    def p_alive_crossing_epoch(self, profile: Profile, threshold: float) -> float | None:
        """:meth:`p_alive_below_at` as epoch seconds, in plain float arithmetic (the timers
        call it for every customer they walk; numpy's per-call overhead is ~10x the maths).

        >>> from datetime import UTC, datetime
        >>> model = ProbabilityModel(
        ...     "1", datetime(2026, 1, 1, tzinfo=UTC), BgNbdParams(0.243, 4.414, 0.793, 2.426),
        ...     None, n_customers=2357, log_likelihood=-9582.4,
        ... )
        >>> from scorers.bgnbd import p_alive_crossing_time
        >>> p = Profile(first_purchase_at=0, last_purchase_at=30 * 7 * 86400, orders=3)
        >>> weeks = model.p_alive_crossing_epoch(p, 0.5) / (7 * 86400)
        >>> bool(abs(weeks - p_alive_crossing_time(model.bgnbd, 2, 30.0, 0.5)) < 1e-9)
        True
        """
        if not 0 < threshold < 1:
            raise ModelError("threshold must be strictly between 0 and 1.")
        first, x = profile.first_purchase_at, profile.transactions - 1
        if first is None or profile.orders <= 0:
            return None
        last = first if profile.last_purchase_at is None else profile.last_purchase_at
        t_x = max(0.0, (last - first) / _WEEK) if x > 0 else 0.0
        weeks = self.scoring.crossing_weeks(x, t_x, threshold)
        if weeks is None or weeks > _MAX_TIMER_WEEKS:
            return None
        return first + weeks * _WEEK

    def to_json(self) -> bytes:
        """The model as JSON bytes (what the registry stores); :meth:`from_json` reads it."""
        return orjson.dumps({"format": _FORMAT, **asdict(self)})

    @classmethod
    def from_json(cls, data: bytes | str) -> ProbabilityModel:
        """Read :meth:`to_json` output; :class:`ModelError` when it is not such a model."""
        try:
            raw: dict[str, Any] = orjson.loads(data)
            if raw.pop("format") != _FORMAT:
                raise ValueError(f"format is not {_FORMAT}")
            gg = raw.pop("gamma_gamma")
            purchases = raw.pop("purchases", None)  # absent from payloads before it existed
            return cls(
                **{
                    **raw,
                    "fitted_at": _utc(datetime.fromisoformat(raw["fitted_at"])),
                    "bgnbd": BgNbdParams(**raw["bgnbd"]),
                    "gamma_gamma": None if gg is None else GammaGammaParams(**gg),
                    "purchases": None if purchases is None else PurchaseModel.from_dict(purchases),
                }
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(
                f"not a {_FORMAT} payload ({exc!r}); publish a new one with `crm-score fit`"
            ) from exc


def fit_from_profiles(
    profiles: Iterable[Profile],
    as_of: datetime,
    *,
    version: str = "",
    discount_rate_annual: float = 0.10,
    clv_horizon_weeks: int = 52,
    minor_per_major: int = 100,
    dropout: str = DEFAULT_DROPOUT,
) -> ProbabilityModel:
    """Fit BG/NBD and the ``dropout`` model (a :data:`~scorers.purchase_models.DROPOUT_KINDS`
    name; ``"bgnbd"``: none besides BG/NBD) on every customer with an order by ``as_of``, and
    Gamma-Gamma on the repeat buyers.

    Gamma-Gamma is fitted on customers with ``x > 0`` and a positive mean repeat value; it is
    left out (``None``) when fewer than :data:`MIN_REPEAT_CUSTOMERS` qualify. Customers whose
    first order is after ``as_of`` are skipped. Raises :class:`ModelError` with fewer than
    :data:`MIN_CUSTOMERS` customers or :data:`MIN_REPEAT_CUSTOMERS` repeat buyers, and its
    subclass :class:`~crm_score.errors.FitRejected` for a degenerate fit (publish nothing then).
    """
    moment = _utc(as_of)
    now = moment.timestamp()
    rows = np.array(
        [
            (p.first_purchase_at, p.first_purchase_at if p.last_purchase_at is None
             else p.last_purchase_at, p.transactions, p.repeat_net_minor)
            for p in profiles
            if p.orders > 0 and p.first_purchase_at is not None and p.first_purchase_at <= now
        ],
        dtype=np.float64,
    ).reshape(-1, 4)  # fmt: skip
    first, last, transactions, repeat_net = rows.T
    x = transactions - 1.0
    repeaters = int(np.count_nonzero(x > 0))
    if len(rows) < MIN_CUSTOMERS or repeaters < MIN_REPEAT_CUSTOMERS:
        raise ModelError(
            f"too few customers to fit: {len(rows)} with an order and {repeaters} with a repeat "
            f"purchase as of {moment.isoformat()}; need at least {MIN_CUSTOMERS} and "
            f"{MIN_REPEAT_CUSTOMERS}. Ingest more history first."
        )
    t_x = np.where(x > 0, np.maximum(last - first, 0.0) / _WEEK, 0.0)
    big_t = np.maximum((now - first) / _WEEK, t_x)
    bg = fit_bgnbd(x, t_x, big_t)
    check_fit("bgnbd", bg.log_likelihood, bg.at_bound)
    purchases = None if dropout == "bgnbd" else fit_purchase_model(dropout, x, t_x, big_t)
    mean = np.where(x > 0, repeat_net / np.maximum(x, 1.0) / minor_per_major, 0.0)
    spenders = (x > 0) & (mean > 0)
    gg = None
    if np.count_nonzero(spenders) >= MIN_REPEAT_CUSTOMERS:
        gg = fit_gamma_gamma(x[spenders], mean[spenders]).params
    return ProbabilityModel(
        version=version,
        fitted_at=moment,
        bgnbd=bg.params,
        gamma_gamma=gg,
        n_customers=bg.n_customers,
        log_likelihood=bg.log_likelihood,
        converged=bg.converged,
        discount_rate_annual=discount_rate_annual,
        clv_horizon_weeks=clv_horizon_weeks,
        minor_per_major=minor_per_major,
        purchases=purchases,
    )
