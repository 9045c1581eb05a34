"""Byte encodings of what Redis keeps: exact round trips, smaller, and old values still read."""

from __future__ import annotations

import doctest
import pickle
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import orjson
import pytest

import streams.learner.state
import streams.state.snapshots
from crm_core.errors import ModelError
from schemas import ScoreSnapshot
from schemas.fast import encode_score_snapshot
from streams.learner.state import Checkpoint, decode_checkpoint, encode_checkpoint
from streams.state.snapshots import KEYS, pack, unpack


def _snapshot(**fields: Any) -> bytes:
    return encode_score_snapshot(
        customer_id="c-1",
        as_of=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        trigger="event",
        event_id="e-1",
        recency_days=21.770243055555557,
        frequency=2,
        monetary_minor=10797,
        **fields,
    )


@pytest.mark.parametrize(
    "raw",
    [
        _snapshot(),
        _snapshot(
            segment="Can't Lose Them",
            p_alive=0.1 + 0.2,
            clv=16084.989395786342,
            reasons=["P(alive) at 30%"],
            value_group="low_value_at_risk",
            cluster=3,
            next_purchase_at=datetime(2027, 3, 10, 2, 6, 27, 908791, tzinfo=UTC),
        ),
    ],
)
def test_a_snapshot_reads_back_exactly_and_smaller(raw: bytes) -> None:
    stored = pack(orjson.loads(raw), raw)
    assert unpack(stored) == orjson.loads(raw)
    assert orjson.dumps(unpack(stored)) == raw  # same keys, same order, same values
    assert len(stored) < 0.7 * len(raw)


def test_snapshots_of_another_shape_or_written_before_are_kept_as_json() -> None:
    raw = _snapshot()
    other = {**orjson.loads(raw), "new_field": 1}
    assert pack(other, orjson.dumps(other)) == orjson.dumps(other)
    assert unpack(raw) == orjson.loads(raw)  # a value stored before the array layout


def test_the_snapshot_keys_are_the_schemas() -> None:
    """``KEYS`` is frozen for its mark: a schema change needs a new mark, and this fails."""
    assert tuple(orjson.loads(_snapshot())) == KEYS
    assert set(KEYS) == set(ScoreSnapshot.model_fields)


def test_a_checkpoint_is_compressed_and_one_written_before_still_reads() -> None:
    learner = pickle.dumps([f"churn:cust-{i:06d}:{1_790_000_000 + i}" for i in range(5000)])
    checkpoint = Checkpoint(learner, {0: 5, 3: 9}, "crm.training", 5000)
    blob = encode_checkpoint(checkpoint)
    assert decode_checkpoint(blob) == checkpoint
    assert len(blob) < len(learner) / 2
    header = orjson.dumps({"format": 1, "topic": "crm.training", "offsets": {"0": 5, "3": 9},
                           "n_examples": 5000})  # fmt: skip
    old = len(header).to_bytes(4, "big") + header + learner
    assert decode_checkpoint(old) == checkpoint
    with pytest.raises(ModelError, match="delete the checkpoint key"):
        decode_checkpoint(blob[:-10])


@pytest.mark.parametrize("module", [streams.state.snapshots, streams.learner.state])
def test_doctests(module: ModuleType) -> None:
    failures, attempted = doctest.testmod(module)
    assert failures == 0 and attempted > 0
