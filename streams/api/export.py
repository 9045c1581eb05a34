"""Everything stored about one customer as one JSON document (GDPR art. 15), for ``crm-score
export`` and ``GET /api/customers/{id}/export``.

The document holds what Redis keeps: the aggregate profile, the latest scores, the indexes the
customer is in (segment, value group, cluster, departments, owner, shares), whether marketing
may contact them, the alert state the rules keep between events (last segment, episodes, the
decayed recent activity), the alerts claimed or published for them and those still in the
recent-alerts stream, the cross-sell categories bought and rules suggested, and the contact
details (masked unless the caller has ``pii``). The events themselves are not stored in Redis:
the input topics keep them until their retention removes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from scorers.consent import contactable
from scorers.customer_state import CustomerState
from streams.api.policy import Principal, mask_contact
from streams.api.queries import CustomerRecord
from streams.state.keys import Layout
from streams.state.records import ProfileRecords

__all__ = ["EXPORT_VERSION", "export_document"]

#: Version of the document's layout.
EXPORT_VERSION = 1
_SEP = "\x1f"  # in the cross-sell hash's suggestion fields (streams/state/cross_sell_counts.py)
_STATE_FIELDS = (
    "evaluated_at", "segment", "last_purchase_at", "high_value", "value_minor",
    "at_risk_episode", "last_gap", "last_snapshot_at", "churn_alerted", "escalated",
    "value_group",
)  # fmt: skip


async def export_document(
    client: aioredis.Redis,
    layout: Layout,
    record: CustomerRecord,
    principal: Principal,
    at: datetime,
) -> dict[str, Any]:
    """The export of ``record``'s customer as ``principal`` may see it, made at ``at``."""
    customer_id = record.customer_id
    async with client.pipeline(transaction=False) as pipe:
        await ProfileRecords(client).queue_get(pipe, layout.profile(customer_id), "as")
        pipe.hgetall(layout.alert_claims(customer_id))
        pipe.hgetall(layout.cross_sell(customer_id))
        raw_state, claims, cross_sell = await pipe.execute()
    state = CustomerState.from_bytes(raw_state)
    profile = record.profile
    contact = None if record.contact is None else mask_contact(record.contact, principal)
    return {
        "export_version": EXPORT_VERSION,
        "customer_id": customer_id,
        "exported_at": at.isoformat(),
        "contact": contact,
        "contact_unmasked": principal.can("pii"),
        "contactable": contactable(profile),
        "profile": {
            **profile.to_dict(),
            "monetary_minor": profile.monetary_minor,
            "open_tickets": profile.open_tickets,
        },
        "scores": record.snapshot,
        "segment": record.index.segment,
        "value_group": record.index.value_group,
        "cluster": record.index.cluster,
        "departments": dict(record.index.departments),
        "owner": record.index.owner,
        "shared_with": sorted(record.shared_with),
        "alert_state": {
            **{name: getattr(state, name) for name in _STATE_FIELDS},
            "stored": orjson.loads(state.to_bytes()),
        },
        "alerts_claimed": sorted(_text(k) for k in claims),
        "recent_alerts": await _recent_alerts(client, layout, customer_id),
        "cross_sell": _cross_sell(cast(dict[bytes, bytes], cross_sell)),
    }


async def _recent_alerts(
    client: aioredis.Redis, layout: Layout, customer_id: str
) -> list[dict[str, Any]]:
    wanted = customer_id.encode()
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(layout.alerts))
    return [orjson.loads(f[b"a"]) for _, f in entries if f.get(b"c") == wanted and b"a" in f]


def _cross_sell(raw: dict[bytes, bytes]) -> dict[str, Any]:
    bought: dict[str, int] = {}
    suggested: list[dict[str, Any]] = []
    for key, value in raw.items():
        name = _text(key)
        if name.startswith("c:"):
            bought[name[2:]] = int(value)
        elif name.startswith("s:"):
            antecedent, _, consequent = name[2:].partition(_SEP)
            suggested.append({"because": antecedent, "suggested": consequent, "at": int(value)})
    return {"categories_first_bought_at": bought, "suggestions": suggested}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
