"""The customers of the timer-sweep benchmark (:mod:`bench.sweep`): plausible profiles and
alert states, the due ones exactly at their first timer checkpoint before the watermark, and
the hand-made scoring configuration they are scored with."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from scorers.bgnbd import BgNbdParams
from scorers.gamma_gamma import GammaGammaParams
from scorers.probability import ProbabilityModel
from scorers.profile import FIELD_CODES, Profile
from scorers.quintiles import RfmBoundaries
from scorers.timeline import CustomerState, Timeline

__all__ = ["BOUNDARIES", "DAY", "MODEL", "WATERMARK", "customer", "population", "record_fields"]

WATERMARK = 1_767_225_600  # 2026-01-01T00:00:00Z: the event time the sweep runs at
DAY = 86_400
HIGH_VALUE_SHARE = 0.2

# Hand-made scoring configuration (as in tests/unit/scorers/test_timeline.py), as of the watermark.
BOUNDARIES = RfmBoundaries(
    version=1,
    as_of=datetime.fromtimestamp(WATERMARK, UTC),
    recency_days=(7, 30, 90, 180),
    frequency=(1, 2, 3, 5),
    monetary_minor=(1000, 5000, 10000, 50000),
)
MODEL = ProbabilityModel(
    "1",
    datetime.fromtimestamp(WATERMARK, UTC),
    BgNbdParams(0.243, 4.414, 0.793, 2.426),
    GammaGammaParams(6.25, 3.74, 15.44),
    n_customers=2357,
    log_likelihood=-9582.4,
    high_value_clv=20_000.0,  # CLV at last purchase >= 200.00: top tier
)


def customer(rng: random.Random, timeline: Timeline, *, due: bool) -> tuple[Profile, CustomerState]:
    """A plausible profile and alert state, both as of the customer's last purchase."""
    if due:  # first recency checkpoint (7 days of silence) in the 30 days before the watermark
        last = WATERMARK - 7 * DAY - 1 - rng.randrange(30 * DAY)
    else:
        last = WATERMARK - rng.randrange(3 * 365 * DAY)
    orders = 1 + rng.randrange(20)
    sent = rng.randrange(200)
    profile = Profile(
        first_purchase_at=last - rng.randrange(7 * DAY, 365 * DAY) if orders > 1 else last,
        last_purchase_at=last, orders=orders, returns=rng.randrange(2),
        gross_minor=orders * rng.randrange(500, 20_000), returned_minor=rng.randrange(3_000),
        messages_sent=sent, messages_delivered=sent, messages_opened=sent // 3,
        messages_clicked=sent // 10, last_engagement_at=last, last_purchase_event_at=last,
        last_marketing_event_at=last,
    )  # fmt: skip
    high = rng.random() < HIGH_VALUE_SHARE
    if not due:
        return profile, CustomerState(last, None, last, high)
    cut = MODEL.high_value_clv or 0.0
    clv = cut * (2.0 if high else 0.5)
    state, _ = timeline.event("", CustomerState(), profile, last, purchase=True, clv=clv)
    return profile, state


def population(
    customers: int, fraction: float, seed: int, timeline: Timeline
) -> tuple[list[str], dict[str, int], dict[str, tuple[Profile, CustomerState]]]:
    """Customer ids, each one's due time, and the due customers' profiles and states."""
    rng = random.Random(seed)
    ids = [f"B{i:07d}" for i in range(customers)]
    due_at = {cid: WATERMARK + 1 + rng.randrange(365 * DAY) for cid in ids}
    due: dict[str, tuple[Profile, CustomerState]] = {}
    for i in rng.sample(range(customers), round(customers * fraction)):
        profile, state = customer(rng, timeline, due=True)
        assert state.evaluated_at is not None
        first = timeline.next_due(state, profile, state.evaluated_at)
        assert first is not None and first <= WATERMARK, (profile, state, first)
        due_at[ids[i]], due[ids[i]] = first, (profile, state)
    return ids, due_at, due


def record_fields(
    rng: random.Random, profile: Profile, state: CustomerState
) -> dict[str, bytes | int]:
    """The profile record: set profile fields by short code, applied offsets, alert state."""
    fields: dict[str, bytes | int] = {
        FIELD_CODES[name]: value for name, value in profile._asdict().items() if value
    }
    return {**fields, "op": rng.randrange(10**7), "om": rng.randrange(10**7),
            "as": state.to_bytes()}  # fmt: skip
