"""Run a simulation: :func:`simulate` returns a :class:`Simulation` to iterate over."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from ._anomalies import InjectedAnomaly, inject_anomalies
from ._catalog import build_catalog
from ._config import SimulationConfig
from ._faults import EmissionPlan, corrupt, plan_emission
from ._marketing import simulate_marketing
from ._model import DUPLICATE, MALFORMATIONS, CustomerTruth, SimulatedMessage
from ._population import Population, draw_population
from ._purchases import PurchaseOutcome, simulate_purchases
from ._records import KINDS, SOURCES, EventRecord, rfc3339_many
from ._service import simulate_service

__all__ = ["Simulation", "simulate"]

_CHUNK = 4096
_MALFORMED_STREAM = 0x6D616C66  # separates malformed-message randomness from the main stream


class Simulation:
    """A simulated population and its event stream.

    Iterating yields :class:`SimulatedMessage` in arrival order: event-time order, except late
    events (``disorder_fraction``), duplicates and malformed messages. Messages are encoded
    lazily, so iterating twice gives the same bytes again without keeping them in memory.
    ``truth`` maps customer id to :class:`CustomerTruth`; ``anomalies`` lists the injected
    purchase anomalies (``SimulationConfig.anomaly_fraction``) and :meth:`anomaly_truth` their
    event ids. (Injected burst orders are not in ``CustomerTruth.orders``.)

    Examples
    --------
    >>> sim = simulate(SimulationConfig(customers=20, days=60, seed=1))
    >>> first = next(iter(sim))
    >>> first.kind in ("purchase", "service", "marketing"), first.key.startswith(b"cust-")
    (True, True)
    >>> len(sim) == sum(1 for _ in sim)
    True
    """

    def __init__(
        self,
        config: SimulationConfig,
        population: Population,
        records: list[EventRecord],
        plan: EmissionPlan,
        truth: dict[str, CustomerTruth],
        id_bytes: bytes,
        anomalies: list[InjectedAnomaly] | None = None,
    ) -> None:
        self.config = config
        self.truth = truth
        self.anomalies = anomalies or []
        self._pop = population
        self._records = records
        self._plan = plan
        self._ids = id_bytes
        start = int(config.start.timestamp())
        times = np.fromiter((r.time for r in records), dtype=np.float64, count=len(records))
        self._epoch = start + np.floor(times).astype(np.int64)
        self._bad_epoch = start + np.floor(plan.bad_time).astype(np.int64)

    def __len__(self) -> int:
        return int(self._plan.source.size)

    def __iter__(self) -> Iterator[SimulatedMessage]:
        source = self._plan.source
        for lo in range(0, source.size, _CHUNK):
            chunk = source[lo : lo + _CHUNK]
            valid = chunk >= 0
            epochs = np.empty(chunk.size, dtype=np.int64)
            epochs[valid] = self._epoch[chunk[valid]]
            epochs[~valid] = self._bad_epoch[-1 - chunk[~valid]]
            texts = rfc3339_many(epochs)
            dups = self._plan.duplicate[lo : lo + _CHUNK].tolist()
            for src, text, epoch, dup in zip(
                chunk.tolist(), texts, epochs.tolist(), dups, strict=True
            ):
                when = datetime.fromtimestamp(epoch, UTC)
                if src >= 0:
                    rec = self._records[src]
                    value = orjson.dumps(self._envelope(src, text))
                    fault = DUPLICATE if dup else None
                    yield SimulatedMessage(
                        KINDS[rec.kind], self._pop.keys[rec.customer], value, when, fault
                    )
                else:
                    yield self._malformed(-1 - src, text, when)

    def summary(self) -> dict[str, int]:
        """Number of valid events per type, plus ``duplicate`` and ``malformed`` counts."""
        counts = Counter(r.type for r in self._records)
        counts[DUPLICATE] = int(self._plan.duplicate.sum())
        counts["malformed"] = int(self._plan.bad_time.size)
        return dict(sorted(counts.items()))

    def anomaly_truth(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per injected anomaly: kind, customer, time and the event and
        order ids of its anomalous events."""
        start = self.config.start
        return [
            {
                "kind": a.kind,
                "customer_id": self._pop.ids[a.customer],
                "at": (start + timedelta(seconds=int(a.at))).isoformat(),
                "event_ids": [self._event_id(i) for i in a.records],
                "order_ids": [str(self._records[i].payload["order_id"]) for i in a.records],
                "event_types": [self._records[i].type for i in a.records],
            }
            for a in self.anomalies
        ]

    def _event_id(self, index: int) -> str:
        return str(uuid.UUID(bytes=self._ids[16 * index : 16 * index + 16], version=4))

    def _envelope(self, index: int, event_time: str) -> dict[str, Any]:
        rec = self._records[index]
        env: dict[str, Any] = {
            "schema_version": 1,
            "event_id": self._event_id(index),
            "customer_id": self._pop.ids[rec.customer],
            "event_time": event_time,
            "source": SOURCES[rec.kind],
            "department": self._pop.departments[rec.kind][rec.customer],
        }
        if rec.extra:
            env.update(rec.extra)
        env["type"] = rec.type
        env["payload"] = rec.payload
        return env

    def _malformed(self, j: int, event_time: str, when: datetime) -> SimulatedMessage:
        rng = np.random.default_rng([self.config.seed, _MALFORMED_STREAM, j])
        template = int(self._plan.bad_template[j])
        env = self._envelope(template, event_time)
        env["event_id"] = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        rec = self._records[template]
        name = MALFORMATIONS[int(self._plan.bad_kind[j])]
        value = corrupt(name, env, rec.kind, rng)
        return SimulatedMessage(KINDS[rec.kind], self._pop.keys[rec.customer], value, when, name)


def _truth(
    config: SimulationConfig, pop: Population, purchases: PurchaseOutcome
) -> dict[str, CustomerTruth]:
    start = config.start
    birth, dropout = pop.birth.tolist(), purchases.dropout.tolist()
    truth: dict[str, CustomerTruth] = {}
    for i, cid in enumerate(pop.ids):
        gone = dropout[i]
        truth[cid] = CustomerTruth(
            customer_id=cid,
            acquired_at=start + timedelta(seconds=int(birth[i])),
            dropout_at=None if np.isnan(gone) else start + timedelta(seconds=int(gone)),
            purchase_rate_per_day=float(pop.rate[i]),
            dropout_probability=float(pop.dropout_p[i]),
            mean_order_value_minor=float(pop.spend[i]),
            orders=int(purchases.orders_per_customer[i]),
        )
    return truth


def simulate(config: SimulationConfig) -> Simulation:
    """Draw a population and all its events; deterministic for a given ``config``.

    Cost is linear in the number of events (about 200k events for 5k customers over a year).
    """
    rng = np.random.default_rng(config.seed)
    catalog = build_catalog(rng)
    pop = draw_population(rng, config)
    purchases = simulate_purchases(rng, pop, catalog, config)
    service = simulate_service(rng, pop.birth, pop.ticket_rate, pop.contact, purchases, config)
    marketing = simulate_marketing(rng, pop, purchases, config)
    purchase_records, anomalies = inject_anomalies(config, purchases.records)
    records = purchase_records + service + marketing
    times = np.fromiter((r.time for r in records), dtype=np.float64, count=len(records))
    kinds = np.fromiter((r.kind for r in records), dtype=np.int8, count=len(records))
    plan = plan_emission(rng, times, kinds, config)
    id_bytes = rng.bytes(16 * len(records))
    truth = _truth(config, pop, purchases)
    return Simulation(config, pop, records, plan, truth, id_bytes, anomalies)
