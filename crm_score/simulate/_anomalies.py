"""Injected purchase anomalies with ground truth: large orders, order bursts, return sprees.

Off by default (``SimulationConfig.anomaly_fraction = 0``). When on, a separate random stream
(seeded from the config seed) picks ``anomaly_fraction`` of all orders as the start of an
episode, at most one per customer and only at a customer's fourth order or later (an anomaly
is relative to a history):

- ``large_order``: that order's quantities are multiplied by 10-30;
- ``order_burst``: 3-5 extra orders like it follow within 2 days;
- ``return_spree``: it and the 2-3 orders before it are returned in full within 1-4 days.

The anomalous events (the large order, the extra orders, the returns) are the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._config import SimulationConfig
from ._records import DAY, PURCHASE, EventRecord

__all__ = ["ANOMALY_KINDS", "InjectedAnomaly", "inject_anomalies"]

#: Kinds of injected purchase anomalies.
ANOMALY_KINDS: tuple[str, ...] = ("large_order", "order_burst", "return_spree")
_ANOMALY_STREAM = 0x616E6F6D  # separates anomaly randomness from the main stream
_MIN_RANK = 3  # the fourth order of a customer or later


@dataclass(frozen=True, slots=True)
class InjectedAnomaly:
    """One injected episode: its kind, customer (index) and the record indices that are
    anomalous (into the simulation's event records)."""

    kind: str
    customer: int
    records: tuple[int, ...]
    at: float


def inject_anomalies(
    config: SimulationConfig, records: list[EventRecord]
) -> tuple[list[EventRecord], list[InjectedAnomaly]]:
    """The purchase records with anomalies injected (new ones appended), and the episodes.

    ``records`` are the purchase records in generation order (each order, then its return if
    any); they are not mutated. With ``anomaly_fraction == 0`` they come back unchanged.
    """
    if config.anomaly_fraction <= 0:
        return records, []
    rng = np.random.default_rng([config.seed, _ANOMALY_STREAM])
    out = list(records)
    orders = [i for i, r in enumerate(records) if r.type == "order_placed"]
    returned = {str(r.payload["order_id"]) for r in records if r.type == "order_returned"}
    by_customer: dict[int, list[int]] = {}
    for i in orders:
        by_customer.setdefault(records[i].customer, []).append(i)
    for seq in by_customer.values():
        seq.sort(key=lambda i: records[i].time)
    eligible = [(c, rank) for c, seq in by_customer.items() for rank in range(_MIN_RANK, len(seq))]
    wanted = round(config.anomaly_fraction * len(orders))
    if not eligible or wanted == 0:
        return out, []
    picks = rng.permutation(len(eligible))
    episodes: list[InjectedAnomaly] = []
    used: set[int] = set()
    horizon = config.horizon_seconds
    for pick in picks.tolist():
        if len(episodes) == wanted:
            break
        customer, rank = eligible[pick]
        if customer in used:
            continue
        seq = by_customer[customer]
        kind = ANOMALY_KINDS[int(rng.integers(len(ANOMALY_KINDS)))]
        if kind == "large_order":
            made = _large(rng, out, seq[rank])
        elif kind == "order_burst":
            made = _burst(rng, out, seq[rank], len(episodes), horizon)
        else:
            made = _spree(
                rng, out, seq[rank - int(rng.integers(2, 4)) : rank + 1], returned, horizon
            )
        if made:
            used.add(customer)
            episodes.append(InjectedAnomaly(kind, customer, tuple(made), out[seq[rank]].time))
    return out, episodes


def _large(rng: np.random.Generator, out: list[EventRecord], index: int) -> list[int]:
    rec = out[index]
    factor = int(rng.integers(10, 31))
    items = [{**i, "quantity": int(i["quantity"]) * factor} for i in rec.payload["items"]]
    payload = {**rec.payload, "items": items, "amount_minor": _amount(items)}
    out[index] = rec._replace(payload=payload)
    return [index]


def _burst(
    rng: np.random.Generator, out: list[EventRecord], index: int, episode: int, horizon: float
) -> list[int]:
    rec = out[index]
    extra = int(rng.integers(3, 6))
    times = np.sort(rec.time + rng.random(extra) * 2.0 * DAY)
    made = []
    for k, t in enumerate(times.tolist()):
        if t >= horizon:
            break
        payload = {**rec.payload, "order_id": f"ord-burst-{episode:05d}-{k}"}
        out.append(EventRecord(t, PURCHASE, rec.customer, "order_placed", payload, rec.extra))
        made.append(len(out) - 1)
    return made


def _spree(
    rng: np.random.Generator,
    out: list[EventRecord],
    indices: list[int],
    returned: set[str],
    horizon: float,
) -> list[int]:
    last = out[indices[-1]]
    times = np.sort(last.time + (1.0 + 3.0 * rng.random(len(indices))) * DAY)
    if times[-1] >= horizon:
        return []
    new = []
    for index, t in zip(indices, times.tolist(), strict=True):
        rec = out[index]
        if str(rec.payload["order_id"]) in returned:
            continue
        owner = {k: v for k, v in (rec.extra or {}).items() if k != "contact"} or None
        new.append(EventRecord(t, PURCHASE, rec.customer, "order_returned", rec.payload, owner))
    if len(new) < 2:
        return []
    out.extend(new)
    return list(range(len(out) - len(new), len(out)))


def _amount(items: list[dict[str, Any]]) -> int:
    return sum(int(i["quantity"]) * int(i["unit_price_minor"]) for i in items)
