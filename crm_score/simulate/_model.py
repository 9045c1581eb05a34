"""What a simulation hands out: messages and per-customer ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "DUPLICATE",
    "MALFORMATIONS",
    "MALFORMATION_REASONS",
    "CustomerTruth",
    "SimulatedMessage",
    "write_ground_truth",
]

#: ``SimulatedMessage.fault`` of an event emitted a second time, byte for byte.
DUPLICATE = "duplicate"
#: Each injected malformation (a ``SimulatedMessage.fault`` value) and the dead-letter reason
#: (``schemas.DeadLetterReason`` value) the worker must give it.
MALFORMATION_REASONS: dict[str, str] = {
    "truncated_json": "not_json",
    "garbage_bytes": "not_json",
    "not_an_object": "not_an_object",
    "negative_amount": "negative_amount",
    "bad_currency": "bad_currency",
    "naive_timestamp": "naive_timestamp",
    "bad_timestamp": "schema_violation",
    "missing_event_id": "missing_event_id",
    "missing_customer_id": "missing_customer_id",
    "bad_customer_id": "bad_customer_id",
    "unknown_type": "unknown_event_type",
    "unsupported_schema_version": "unsupported_schema_version",
    "bad_payload": "schema_violation",
    "missing_payload": "schema_violation",
    "oversized": "too_large",
}
#: ``SimulatedMessage.fault`` values of injected malformed messages (each must be dead-lettered).
MALFORMATIONS: tuple[str, ...] = tuple(MALFORMATION_REASONS)


@dataclass(frozen=True, slots=True)
class SimulatedMessage:
    """One message for an input topic.

    ``kind`` is ``purchase``, ``service`` or ``marketing`` (the topic is ``settings.topic(kind)``),
    ``key`` the UTF-8 customer id, ``value`` the JSON event (or raw bytes for malformed ones).
    ``event_time`` is the event's own time, or the insertion time of a malformed message.
    ``fault`` is ``None`` for a valid event, :data:`DUPLICATE`, or one of :data:`MALFORMATIONS`.
    """

    kind: str
    key: bytes
    value: bytes
    event_time: datetime
    fault: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerTruth:
    """The latent truth about one customer, for evaluating churn and CLV models.

    ``dropout_at`` is when the customer became inactive (no purchases after their last one;
    complaints and unsubscribes may still happen until then); it may lie after the window end.
    ``None`` means still alive at the end of the window. Rates are per day while alive; money is
    minor units. ``orders`` counts orders placed inside the window.
    """

    customer_id: str
    acquired_at: datetime
    dropout_at: datetime | None
    purchase_rate_per_day: float
    dropout_probability: float
    mean_order_value_minor: float
    orders: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (times as RFC 3339 strings)."""
        return {
            "customer_id": self.customer_id,
            "acquired_at": self.acquired_at.isoformat(),
            "dropout_at": self.dropout_at.isoformat() if self.dropout_at else None,
            "purchase_rate_per_day": self.purchase_rate_per_day,
            "dropout_probability": self.dropout_probability,
            "mean_order_value_minor": self.mean_order_value_minor,
            "orders": self.orders,
        }


def write_ground_truth(truth: dict[str, CustomerTruth], path: Path) -> int:
    """Write one JSON object per customer (see :meth:`CustomerTruth.to_dict`); returns the count."""
    with path.open("wb") as fh:
        for item in truth.values():
            fh.write(orjson.dumps(item.to_dict()) + b"\n")
    return len(truth)
