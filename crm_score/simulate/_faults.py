"""Fault injection: where duplicates, late events and malformed messages go, and their bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from ._config import SimulationConfig
from ._model import MALFORMATIONS
from ._records import HOUR, MARKETING, PURCHASE, SERVICE

__all__ = ["EmissionPlan", "corrupt", "plan_emission"]

IntArray = npt.NDArray[np.intp]
#: Malformations that only make sense on an event of one kind (their template's kind).
_NEEDS_KIND = {"negative_amount": PURCHASE, "bad_currency": PURCHASE, "oversized": SERVICE}
_OVERSIZE_BYTES = 70 * 1024
_BAD_PAYLOAD = {
    PURCHASE: ("items", [{"sku": "INK-001", "category": "ink", "quantity": 0}]),
    SERVICE: ("priority", "critical"),
    MARKETING: ("channel", "fax"),
}


@dataclass(frozen=True, slots=True, eq=False)
class EmissionPlan:
    """Emission order of every message.

    ``source[k] >= 0`` is a record index (``duplicate[k]`` tells whether it is the re-emission);
    ``source[k] < 0`` is malformed message ``j = -1 - source[k]``, built from record
    ``bad_template[j]`` with ``MALFORMATIONS[bad_kind[j]]``, inserted at ``bad_time[j]``.
    """

    source: IntArray
    duplicate: npt.NDArray[np.bool_]
    bad_template: IntArray
    bad_kind: IntArray
    bad_time: npt.NDArray[np.float64]


def plan_emission(
    rng: np.random.Generator,
    times: npt.NDArray[np.float64],
    kinds: npt.NDArray[np.int8],
    config: SimulationConfig,
) -> EmissionPlan:
    """Order valid events by (possibly delayed) arrival, add duplicates and malformed messages.

    A late event arrives up to ``max_disorder_seconds`` after its event time; a duplicate
    arrives 1 s to a few hours after the original; malformed messages arrive uniformly over
    the window (their count is ``malformed_fraction`` times the number of valid events).
    """
    n = times.size
    late = rng.random(n) < config.disorder_fraction
    arrival = times + late * rng.random(n) * config.max_disorder_seconds
    dup = np.flatnonzero(rng.random(n) < config.duplicate_fraction)
    dup_arrival = arrival[dup] + 1.0 + rng.exponential(2 * HOUR, size=dup.size)
    m = round(config.malformed_fraction * n) if n else 0
    bad_kind = rng.integers(len(MALFORMATIONS), size=m)
    by_kind = [np.flatnonzero(kinds == k) for k in range(3)]
    template = rng.integers(max(n, 1), size=m)
    for j in range(m):
        needs = _NEEDS_KIND.get(MALFORMATIONS[bad_kind[j]])
        if needs is not None and by_kind[needs].size:
            template[j] = by_kind[needs][template[j] % by_kind[needs].size]
        elif needs is not None:
            bad_kind[j] = MALFORMATIONS.index("truncated_json")
    bad_time = rng.random(m) * config.horizon_seconds
    source = np.concatenate([np.arange(n), dup, -1 - np.arange(m)])
    duplicate = np.concatenate(
        [np.zeros(n, np.bool_), np.ones(dup.size, np.bool_), np.zeros(m, np.bool_)]
    )
    order = np.argsort(np.concatenate([arrival, dup_arrival, bad_time]), kind="stable")
    return EmissionPlan(source[order], duplicate[order], template, bad_kind, bad_time)


def corrupt(name: str, envelope: dict[str, Any], kind: int, rng: np.random.Generator) -> bytes:
    """Bytes of malformed message ``name`` derived from a valid ``envelope`` of ``kind``.

    No result contains a newline, so every message can be written as one JSONL line.
    """
    env: dict[str, Any] = orjson.loads(orjson.dumps(envelope))  # deep copy
    payload: dict[str, Any] = env["payload"]
    if name == "truncated_json":
        raw = orjson.dumps(env)
        return raw[: int(rng.integers(1, len(raw) - 1))]
    if name == "garbage_bytes":
        raw = rng.bytes(int(rng.integers(8, 200)))
        return b"\xff" + raw.replace(b"\n", b"\xfe").replace(b"\r", b"\xfd")
    if name == "not_an_object":
        return orjson.dumps([env] if rng.random() < 0.5 else "order_placed")
    if name == "negative_amount":
        payload["amount_minor"] = -int(payload["amount_minor"]) - 1
    elif name == "bad_currency":
        payload["currency"] = ["US$", "dollars", "", "usd1"][int(rng.integers(4))]
    elif name == "naive_timestamp":
        env["event_time"] = env["event_time"].removesuffix("+00:00")
    elif name == "bad_timestamp":
        env["event_time"] = ["yesterday", "2026-13-45T99:00:00+00:00", 1767225600][
            int(rng.integers(3))
        ]
    elif name in ("missing_event_id", "missing_customer_id", "missing_payload"):
        del env[name.removeprefix("missing_")]
    elif name == "bad_customer_id":
        env["customer_id"] = f"{env['customer_id']} / dropped table"
    elif name == "unknown_type":
        env["type"] = env["type"].split("_")[0] + "_teleported"
    elif name == "unsupported_schema_version":
        env["schema_version"] = 99
    elif name == "bad_payload":
        field, value = _BAD_PAYLOAD[kind]
        payload[field] = value
    elif name == "oversized":
        sentence = "Please read my full complaint below. "
        payload["text"] = sentence * (_OVERSIZE_BYTES // len(sentence) + 1)
    else:  # pragma: no cover - guarded by MALFORMATIONS
        raise ValueError(f"unknown malformation {name!r}")
    return orjson.dumps(env)
