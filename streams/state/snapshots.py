"""The latest score snapshot as kept for the query API (``:sc``): its values, not its keys.

A snapshot on ``crm.scores`` is a JSON object of 23 keys; kept per customer, the keys were
half of its ~600 bytes. Stored is a mark byte and the JSON array of its values in
:data:`KEYS` order; :func:`unpack` gives back the object, key for key and value for value (the
API returns it as it was published). A snapshot with other keys, or in another order, is kept
as it came; so is a value written before this layout (plain JSON), and both read as they are.
``KEYS`` can never change for its mark: a new snapshot layout gets a new mark.

Examples
--------
>>> raw = orjson.dumps(dict.fromkeys(KEYS, 1))
>>> stored = pack(orjson.loads(raw), raw)
>>> len(stored) < len(raw), unpack(stored) == orjson.loads(raw)
(True, True)
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["KEYS", "pack", "unpack"]

_MARK = b"\x01"
#: The keys of a snapshot as schemas.fast.encode_score_snapshot writes them (mark 1).
KEYS = (
    "schema_version", "customer_id", "as_of", "trigger", "event_id", "recency_days",
    "frequency", "monetary_minor", "r_score", "f_score", "m_score", "segment", "p_alive",
    "expected_purchases_30d", "expected_purchases_90d", "clv", "next_purchase_at",
    "probability_model_version", "churn_probability", "churn_model_version", "reasons",
    "value_group", "cluster",
)  # fmt: skip


def pack(snapshot: dict[str, Any], raw: bytes) -> bytes:
    """The value to store for ``snapshot`` (``raw`` is its JSON, as published)."""
    if tuple(snapshot) != KEYS:
        return raw
    return _MARK + orjson.dumps(list(snapshot.values()))


def unpack(stored: bytes) -> dict[str, Any]:
    """The snapshot :func:`pack` was given."""
    if stored[:1] != _MARK:
        return dict(orjson.loads(stored))
    return dict(zip(KEYS, orjson.loads(stored[1:]), strict=True))
