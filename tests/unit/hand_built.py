"""Hand-built inputs the unit tests of the round share: whole-second times, RFM boundaries and a
probability model with known values, one customer's purchases and profiles, and a Kafka-like
record to carry them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas import PurchaseEvent, example_event_dict
from scorers.bgnbd import BgNbdParams
from scorers.gamma_gamma import GammaGammaParams
from scorers.probability import ProbabilityModel
from scorers.profile import Profile
from scorers.quintiles import RfmBoundaries
from streams.round.messages import Applied

DAY = 86_400
T0 = 1_700_000_000  # 2023-11-14, a whole second
BOUNDS = RfmBoundaries(
    version=1,
    as_of=datetime(2026, 1, 1, tzinfo=UTC),
    recency_days=(7, 30, 90, 180),
    frequency=(1, 2, 3, 5),
    monetary_minor=(1000, 5000, 10000, 50000),
)
MODEL = ProbabilityModel(
    "1",
    datetime(2026, 1, 1, tzinfo=UTC),
    BgNbdParams(0.243, 4.414, 0.793, 2.426),
    GammaGammaParams(6.25, 3.74, 15.44),
    n_customers=2357,
    log_likelihood=-9582.4,
    high_value_clv=0.0,
)


@dataclass(frozen=True)
class Record:
    """The fields of a consumed Kafka record the round reads."""

    topic: str = "crm.purchase"
    partition: int = 0
    offset: int = 0
    key: bytes | None = b"c"
    value: bytes | None = b""
    timestamp: int | None = None


def purchase_event(at: int, event_id: str) -> PurchaseEvent:
    """Customer ``c``'s example order placed at ``at`` (epoch seconds)."""
    raw = example_event_dict("order_placed")
    raw.update(
        customer_id="c", event_id=event_id, event_time=datetime.fromtimestamp(at, UTC).isoformat()
    )
    return PurchaseEvent.model_validate(raw)


def profile_of(*times: int) -> Profile:
    """The profile of one order of 50.00 at each of ``times``."""
    return Profile(
        first_purchase_at=min(times), last_purchase_at=max(times), orders=len(times),
        gross_minor=5000 * len(times),
    )  # fmt: skip


def applied_event(
    at: int, *, late: bool = False, newest: int | None = None, **envelope: Any
) -> Applied:
    """Customer ``c``'s order at ``at`` as applied by a round, without contact details unless
    ``envelope`` gives them; ``newest`` is the profile's newest purchase (default ``at``)."""
    raw = example_event_dict("order_placed")
    raw.update(
        customer_id="c", event_id=f"e{at}", event_time=datetime.fromtimestamp(at, UTC).isoformat()
    )
    raw.pop("contact", None)
    raw.update(envelope)
    event = PurchaseEvent.model_validate(raw)
    last = newest if newest is not None else at
    profile = Profile(last_purchase_event_at=last, last_purchase_at=last, orders=1)
    return Applied(Record(), event, profile, float(at), late)
