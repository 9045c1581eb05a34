"""Read one customer's state and scores back from Redis, for people and scripts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm_core.settings import Settings
from scorers.rfm import rfm
from streams.state.profiles import RedisProfileStore, connect_redis

__all__ = ["profile_report"]


def _iso(epoch: int | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


async def profile_report(
    settings: Settings, customer_id: str, as_of: datetime
) -> dict[str, Any] | None:
    """The stored profile with derived aggregates and RFM as of ``as_of``; None if unknown."""
    client = connect_redis(settings)
    try:
        profile = await RedisProfileStore(client, settings).get_profile(customer_id)
    finally:
        await client.aclose()
    if profile is None:
        return None
    scores = rfm(profile, as_of)
    fields = profile.to_dict()
    for name, value in list(fields.items()):
        if name.endswith("_at"):
            fields[name] = _iso(value)  # type: ignore[assignment]
    return {
        "customer_id": customer_id,
        "as_of": as_of.isoformat(),
        "rfm": {
            "recency_days": scores.recency_days,
            "frequency": scores.frequency,
            "monetary_minor": scores.monetary_minor,
        },
        "service": {
            "open_tickets": profile.open_tickets,
            "mean_satisfaction": profile.mean_satisfaction,
            "mean_resolution_hours": None
            if profile.mean_resolution_seconds is None
            else profile.mean_resolution_seconds / 3600,
        },
        "profile": fields,
    }
