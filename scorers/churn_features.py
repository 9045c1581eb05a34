"""The churn model's features: one pure builder, used for learning and for scoring alike.

Features describe a customer as of an event time: RFM and its quintiles, inter-purchase gaps
and their trend, P(alive) and expected purchases, service (open tickets, complaints, recent
ratings, resolution time) and marketing (open and click rates, recent unsubscribes and bounces),
and days since the last sign of life (an order or an email opened or clicked).
The same :func:`churn_features` builds the snapshot that becomes a training example and the row
a worker scores, so there is no training/serving skew.

"Recent" activity is a sum decayed with a 30-day time constant (:class:`RecentActivity`):
exact to keep incrementally, independent of the order events arrive in, and a few floats per
customer. Money is aggregated in float here (major units), as in every scorer.

Examples
--------
>>> r = RecentActivity().add("complaints", 0).add("complaints", 86_400)
>>> round(r.value("complaints", 86_400), 3)
1.967
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from crm_core.errors import ModelError
from schemas import Event, MarketingEvent, ServiceEvent
from scorers.profile import Profile
from scorers.sentiment import score as sentiment

__all__ = [
    "FEATURE_NAMES",
    "RECENT_TAU_DAYS",
    "RecentActivity",
    "churn_feature_values",
    "churn_features",
    "present",
    "reason_text",
    "signal_of",
]

_DAY = 86_400.0
#: Time constant of the "recent" decayed counts, days.
RECENT_TAU_DAYS = 30.0
_TAU = RECENT_TAU_DAYS * _DAY
_DECIMALS = 3
_MISSING = math.nan
_COUNT_DECIMALS = 6
_SIGNALS = (
    "complaints", "tickets", "low_ratings", "delivered", "opened", "clicked", "unsubscribes",
    "bounces", "texts", "sentiment", "negative_texts",
)  # fmt: skip
_INDEX = {name: i for i, name in enumerate(_SIGNALS)}
_MARKETING_SIGNALS = {
    "message_delivered": "delivered",
    "message_opened": "opened",
    "message_clicked": "clicked",
    "message_unsubscribed": "unsubscribes",
    "consent_withdrawn": "unsubscribes",
    "message_bounced": "bounces",
}

#: Every feature, in the order rows are built (a model sees them as a dict by name).
FEATURE_NAMES: tuple[str, ...] = (
    "recency_days", "log_orders", "log_monetary", "r_score", "f_score", "m_score",
    "mean_gap_days", "last_gap_ratio", "recency_gap_ratio", "p_alive", "expected_purchases_90d",
    "return_rate", "open_tickets", "complaints_30d", "tickets_30d", "low_ratings_30d",
    "mean_satisfaction", "resolution_days", "open_rate", "open_rate_30d", "open_rate_drop",
    "click_rate", "unsubscribes_30d", "bounces_30d", "days_since_engagement", "unsubscribed",
    "sentiment_30d", "negative_texts_30d", "days_since_activity", "engaged_since_order",
)  # fmt: skip


class RecentActivity(NamedTuple):
    """Counts of recent signals, each decayed by ``exp(-age / 30 days)``, valid at ``at``.

    Adding an event older than ``at`` adds its decayed weight, so the result does not depend
    on the order events are added in (up to float rounding).
    """

    at: int | None = None
    counts: tuple[float, ...] = (0.0,) * len(_SIGNALS)

    def add(self, signal: str, at: int, amount: float = 1.0) -> RecentActivity:
        """``amount`` more of ``signal`` (a name from :func:`signal_of`) at epoch second ``at``
        (1 for a count; the sentiment score, P(positive) - P(negative), for ``sentiment``)."""
        i = _INDEX[signal]
        if self.at is None or at >= self.at:
            # Stored counts keep 6 decimals (they live in every customer's state).
            counts = [round(c, _COUNT_DECIMALS) for c in self.decayed(at).counts]
            counts[i] = round(counts[i] + amount, _COUNT_DECIMALS)
            return RecentActivity(at, tuple(counts))
        counts = list(self.counts)
        weight = math.exp(-(self.at - at) / _TAU)
        counts[i] = round(counts[i] + amount * weight, _COUNT_DECIMALS)
        return RecentActivity(self.at, tuple(counts))

    def mean_sentiment(self, at: int) -> float | None:
        """Decay-weighted mean sentiment score of recent ticket texts (None: under half a
        decayed text)."""
        return _mean_sentiment(self.decayed(at).counts)

    def decayed(self, at: int) -> RecentActivity:
        """The same counts as seen at ``at`` (no later than the newest signal: unchanged)."""
        if self.at is None or at <= self.at:
            return self
        factor = math.exp(-(at - self.at) / _TAU)
        return RecentActivity(at, tuple(c * factor for c in self.counts))

    def value(self, signal: str, at: int) -> float:
        """The decayed count of ``signal`` at ``at``."""
        return self.decayed(at).counts[_INDEX[signal]]

    def to_list(self) -> list[object]:
        """JSON-friendly form (:meth:`from_list` reads it back exactly: JSON floats round-trip,
        so a state read from Redis equals the one kept in memory)."""
        return [self.at, list(self.counts)]

    @classmethod
    def from_list(cls, raw: object) -> RecentActivity:
        """Read :meth:`to_list` output; anything else is no activity."""
        if isinstance(raw, list) and len(raw) == 2 and isinstance(raw[1], list):
            at, counts = raw
            if len(counts) == len(_SIGNALS) and (at is None or isinstance(at, int)):
                return cls(at, tuple(float(c) for c in counts))
        return cls()


def _mean_sentiment(counts: tuple[float, ...]) -> float | None:
    texts = counts[_INDEX["texts"]]
    return counts[_INDEX["sentiment"]] / texts if texts >= 0.5 else None


def signal_of(event: Event) -> list[tuple[str, float]]:
    """The recent-activity signals one event adds, with their amounts (often none)."""
    if isinstance(event, ServiceEvent):
        signals = []
        payload = event.payload
        if event.type == "ticket_opened":
            signals.append(("tickets", 1.0))
            if payload.complaint:
                signals.append(("complaints", 1.0))
        if payload.satisfaction is not None and payload.satisfaction <= 2:
            signals.append(("low_ratings", 1.0))
        if payload.text:
            found = sentiment(payload.text)
            signals += [("texts", 1.0), ("sentiment", found.score)]
            if found.label == "negative":
                signals.append(("negative_texts", 1.0))
        return signals
    if isinstance(event, MarketingEvent):
        signal = _MARKETING_SIGNALS.get(event.type)
        return [] if signal is None else [(signal, 1.0)]
    return []


def churn_features(
    profile: Profile,
    recent: RecentActivity,
    at: int,
    *,
    quintiles: tuple[int, int, int] | None,
    p_alive: float | None,
    expected_purchases_90d: float | None,
    last_gap_seconds: int | None,
    minor_per_major: int = 100,
) -> dict[str, float]:
    """The feature row of a customer with at least one order, as of epoch second ``at``.

    R/F/M quintiles, P(alive) and expected purchases are left out while their models are not
    published; other missing values get a neutral fill (ratios 1, satisfaction 3), the same at
    learning and at scoring; every value is rounded to three decimals.
    """
    values = churn_feature_values(
        profile,
        recent,
        at,
        quintiles=quintiles,
        p_alive=p_alive,
        expected_purchases_90d=expected_purchases_90d,
        last_gap_seconds=last_gap_seconds,
        minor_per_major=minor_per_major,
    )
    return present(values)


def churn_feature_values(
    profile: Profile,
    recent: RecentActivity,
    at: int,
    *,
    quintiles: tuple[int, int, int] | None,
    p_alive: float | None,
    expected_purchases_90d: float | None,
    last_gap_seconds: int | None,
    minor_per_major: int = 100,
) -> list[float]:
    """:func:`churn_features` as a list in :data:`FEATURE_NAMES` order (what a round scores
    as one matrix); NaN where a score is missing."""
    last = profile.last_purchase_at if profile.last_purchase_at is not None else at
    first = profile.first_purchase_at if profile.first_purchase_at is not None else last
    recency = max(0.0, (at - last) / _DAY)
    orders = max(1, profile.orders)
    mean_gap = (last - first) / (orders - 1) / _DAY if orders > 1 and last > first else 0.0
    usual = mean_gap if mean_gap > 0 else RECENT_TAU_DAYS
    # A score whose model is not published yet is missing (NaN), not filled: a fill learned as a
    # value would shift every row once the model appears.
    r, f, m = quintiles if quintiles is not None else (_MISSING, _MISSING, _MISSING)
    now = recent.decayed(at).counts
    delivered = profile.messages_delivered or profile.messages_sent
    open_rate = profile.messages_opened / delivered if delivered else 0.0
    recent_delivered = now[_INDEX["delivered"]]
    # Under half a decayed message the recent rate says nothing: take the lifetime one.
    open_recent = now[_INDEX["opened"]] / recent_delivered if recent_delivered >= 0.5 else open_rate
    open_recent = min(1.0, open_recent)
    engaged = profile.last_engagement_at
    engagement_days = min(365.0, (at - engaged) / _DAY) if engaged else 365.0
    sentiment = _mean_sentiment(now)
    satisfaction = profile.mean_satisfaction
    resolution = profile.mean_resolution_seconds
    row = [
        recency,
        math.log1p(orders),
        math.log1p(max(0, profile.monetary_minor) / minor_per_major),
        float(r),
        float(f),
        float(m),
        mean_gap,
        (min(20.0, last_gap_seconds / _DAY / mean_gap) if last_gap_seconds and mean_gap else 1.0),
        min(20.0, recency / usual),
        _MISSING if p_alive is None else p_alive,
        _MISSING if expected_purchases_90d is None else expected_purchases_90d,
        profile.returns / orders,
        float(profile.open_tickets),
        now[_INDEX["complaints"]],
        now[_INDEX["tickets"]],
        now[_INDEX["low_ratings"]],
        3.0 if satisfaction is None else satisfaction,
        0.0 if resolution is None else resolution / _DAY,
        min(1.0, open_rate),
        open_recent,
        max(0.0, 1.0 - open_recent / open_rate) if open_rate > 0 else 0.0,
        min(1.0, profile.messages_clicked / delivered) if delivered else 0.0,
        now[_INDEX["unsubscribes"]],
        now[_INDEX["bounces"]],
        engagement_days,
        1.0 if profile.last_unsubscribe_at is not None else 0.0,
        0.0 if sentiment is None else sentiment,
        now[_INDEX["negative_texts"]],
        # Recency and engagement interact: an email opened or clicked after the last order is a
        # sign of life that recency alone misses (see scorers/churn_model.py).
        min(recency, engagement_days),
        1.0 if engagement_days < recency else 0.0,
    ]
    # Three decimals is finer than any feature is meaningful, and a snapshot waiting for its
    # label stores ~7 bytes a feature instead of ~18; learning and scoring both see this row.
    return [round(value, _DECIMALS) for value in row]


def present(values: Sequence[float | None]) -> dict[str, float]:
    """A row of values in :data:`FEATURE_NAMES` order as a dict, missing ones (NaN, or None as
    JSON stores NaN) left out: a model skips what a row does not have.

    A shorter row is one stored before the last features were appended (a snapshot waiting for
    its label in a customer's state): the features it lacks are missing.
    """
    if len(values) > len(FEATURE_NAMES):
        raise ModelError(
            f"a feature row has {len(values)} values, more than the {len(FEATURE_NAMES)} features "
            "this version knows; it was written by a newer version: upgrade this worker."
        )
    return {
        name: value
        for name, value in zip(FEATURE_NAMES, values, strict=False)
        if value is not None and value == value  # NaN != NaN
    }


def reason_text(name: str, features: Mapping[str, float]) -> str:
    """A feature that pushed the churn score up, in words ("about 3 complaints in 30 days")."""
    v = features.get(name, 0.0)
    match name:
        case "recency_days" | "recency_gap_ratio":
            text = f"no purchase for {features.get('recency_days', 0.0):.0f} days"
            gap = features.get("mean_gap_days", 0.0)
            return f"{text}; usually buys every {gap:.0f} days" if gap > 0 else text
        case "complaints_30d" | "tickets_30d" | "low_ratings_30d" | "unsubscribes_30d":
            noun = {
                "complaints_30d": "complaint",
                "tickets_30d": "support ticket",
                "low_ratings_30d": "low satisfaction rating",
                "unsubscribes_30d": "unsubscribe",
            }[name]
            count = max(1, round(v))
            return f"about {count} {noun}{'s' if count != 1 else ''} in 30 days"
        case "sentiment_30d":
            return f"recent ticket texts are negative (sentiment {v:+.2f})"
        case "negative_texts_30d":
            count = max(1, round(v))
            return f"about {count} negative ticket message{'s' if count != 1 else ''} in 30 days"
        case "bounces_30d":
            return f"about {max(1, round(v))} bounced messages in 30 days"
        case "open_rate_drop":
            return f"opens fell {v:.0%}"
        case "open_rate" | "open_rate_30d" | "click_rate":
            label = {"open_rate": "opens", "open_rate_30d": "recent opens", "click_rate": "clicks"}
            return f"{label[name]} at {v:.0%} of messages"
        case "p_alive":
            return f"P(alive) at {v:.0%}"
        case "expected_purchases_90d":
            return f"{v:.1f} purchases expected in 90 days"
        case "open_tickets":
            return f"{v:.0f} open support ticket{'s' if v != 1 else ''}"
        case "mean_satisfaction":
            return f"mean satisfaction {v:.1f} of 5"
        case "resolution_days":
            return f"tickets take {v:.1f} days to resolve"
        case "days_since_engagement":
            return f"no email engagement for {v:.0f} days"
        case "days_since_activity":
            return f"no order or email engagement for {v:.0f} days"
        case "engaged_since_order":
            if v >= 0.5:
                return "engaged with email since the last order"
            return "no email opened or clicked since the last order"
        case "unsubscribed":
            return "unsubscribed from marketing"
        case "return_rate":
            return f"returns {v:.0%} of orders"
        case "last_gap_ratio":
            return f"last gap between orders {v:.1f}x the usual"
        case "r_score" | "f_score" | "m_score":
            return f"{name[0].upper()} score {v:.0f} of 5"
        case _:
            return f"{name.replace('_', ' ')} = {v:.3g}"
