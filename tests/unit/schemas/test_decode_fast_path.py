"""The msgspec fast path (:mod:`schemas._decode`) accepts only what pydantic accepts, and builds
the same event; everything else goes to pydantic, so rejections and reasons are unchanged.

Hypothesis mutates the example events field by field (boundary numbers, wrong types, strings
around each length limit, timestamps in many spellings and ranges, missing and unknown keys,
repeated keys, whitespace and escapes) and compares both paths on every message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import schemas.parse
from crm_core.errors import EventRejected
from schemas import EVENT_TYPES, Event, EventParser, example_event_dict, example_json
from schemas._decode import decode_plain

NOW = datetime(2026, 1, 6, tzinfo=UTC)
PROPERTY = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def pydantic_event(raw: bytes, kind: str) -> Event | None:
    """What the pydantic path makes of ``raw`` (validation and the duplicate-key check)."""
    try:
        return schemas.parse._validate(schemas.parse._ADAPTERS[kind], raw, kind)
    except EventRejected:
        return None


def same_model(fast: BaseModel, slow: BaseModel) -> None:
    """Equal values, equal fields set, at every level."""
    assert type(fast) is type(slow)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_dump_json(exclude_unset=True) == slow.model_dump_json(exclude_unset=True)
    for name in type(fast).model_fields:
        a, b = getattr(fast, name), getattr(slow, name)
        assert type(a) is type(b), name
        if isinstance(a, BaseModel):
            same_model(a, b)
        elif isinstance(a, list):
            for x, y in zip(a, b, strict=True):
                same_model(x, y)
        elif isinstance(a, datetime):
            assert a.tzinfo is UTC and b.utcoffset() == timedelta(0), name


def check(raw: bytes, kind: str) -> bool:
    """Compare the paths on one message; True when the fast path took it."""
    fast = decode_plain(raw, kind)
    if fast is None:
        return False
    slow = pydantic_event(raw, kind)
    assert slow is not None, raw
    same_model(fast, slow)
    return True


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_the_examples_take_the_fast_path(event_type: str) -> None:
    event = example_event_dict(event_type)
    kind = EVENT_TYPES[event_type]
    assert check(orjson.dumps(event), kind)
    for optional in ("department", "owner", "contact"):
        del event[optional]
    assert check(orjson.dumps(event), kind)  # defaults filled in, not given


def test_whatever_pydantic_rejects_is_left_to_it() -> None:
    order = example_json("order_placed")
    for raw in (
        example_json("order_placed", {"payload.amount_minor": -1}),
        example_json("order_placed", {"payload.currency": "XYZ"}),
        example_json("order_placed", {"event_time": "2026-01-05T09:00:00"}),  # naive
        example_json("order_placed", {"schema_version": True}),
        example_json("order_placed", {"customer_id": "c 42"}),
        example_json("ticket_resolved", {}),  # wrong topic
        order.replace(b'"owner":', b'"owner":"x","owner":'),  # a key twice
        order.replace(b'"source":"shop"', b'"source":"sh\\u006fp"'),  # an escape: unsure
    ):
        assert decode_plain(raw, "purchase") is None


# --- generated messages -------------------------------------------------------------------------
def lengths(*limits: int) -> st.SearchStrategy[str]:
    sizes = sorted({n + d for n in limits for d in (-1, 0, 1) if n + d >= 0})
    alphabet = st.sampled_from("aZ09-_.:@ é€😀{}")
    return st.sampled_from(sizes).flatmap(lambda n: st.text(alphabet, min_size=n, max_size=n))


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    year = draw(st.sampled_from([1, 1969, 1970, 2025, 2105, 2106, 9999]))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = (
        draw(st.integers(0, 25)),
        draw(st.integers(0, 61)),
        draw(st.integers(0, 61)),
    )
    fraction = draw(st.sampled_from(["", ".", ".5", ".123456", ".1234567", ".000000001"]))
    sep = draw(st.sampled_from("TTt _"))
    hh, mm = draw(st.integers(0, 25)), draw(st.integers(0, 61))
    offset = draw(
        st.sampled_from(
            ["Z", "z", "", f"+{hh:02}:{mm:02}", f"-{hh:02}:{mm:02}", f"+{hh:02}{mm:02}"]
        )
    )
    return f"{year:04}-{month:02}-{day:02}{sep}{hour:02}:{minute:02}:{second:02}{fraction}{offset}"


values = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, -1, 5, 6, 500, 10**6, 10**6 + 1, 10**12, 10**12 + 1, 2**64, 1.0, 0.5]),
    lengths(1, 64, 128),
    st.sampled_from(["USD", "EUR", "usd", "XYZ", "web", "sms", "urgent", "order_placed"]),
    timestamps(),
    st.builds(list),
    st.builds(dict),
    st.builds(lambda: [{"sku": "s", "category": "c", "quantity": 1, "unit_price_minor": 1}] * 501),
)


def fields_of(event: dict[str, Any]) -> list[str]:
    """Dotted paths of every field (list items by index, the first two of a list)."""
    paths = []
    for key, value in event.items():
        paths.append(key)
        if isinstance(value, dict):
            paths += [f"{key}.{inner}" for inner in fields_of(value)]
        elif isinstance(value, list):
            for i, item in enumerate(value[:2]):
                if isinstance(item, dict):
                    paths += [f"{key}.{i}.{inner}" for inner in fields_of(item)]
    return paths


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, str]:
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    event = example_event_dict(event_type)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from([*fields_of(event), "extra", "payload.extra"]))
        *parents, last = path.split(".")
        node: Any = event
        for part in parents:
            if isinstance(node, list):
                node = node[int(part)] if int(part) < len(node) else None
            else:
                node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if draw(st.booleans()) and last in node:
            del node[last]
        else:
            node[last] = draw(values)
    # the standard library writes integers of any size (orjson stops at 64 bits)
    raw = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    edit = draw(st.sampled_from(["none", "none", "spaces", "twice", "escape", "colon"]))
    if edit == "spaces":
        raw = raw.replace(b'":', b'" : ').replace(b",", b", ")
    elif edit == "twice" and b'"source":' in raw:
        raw = raw.replace(b'"source":', b'"source":"x","source":', 1)
    elif edit == "escape":
        raw = raw.replace(b"a", b"\\u0061", 1)
    elif edit == "colon" and b'"owner":' in raw:
        raw = raw.replace(b'"owner":', b'"owner":"a:b","owner":', 1)
    kind = draw(st.sampled_from([EVENT_TYPES[event_type]] * 3 + ["purchase", "service"]))
    return raw, kind


@PROPERTY
@given(messages())
def test_fast_path_builds_what_pydantic_builds_or_steps_aside(message: tuple[bytes, str]) -> None:
    check(*message)


@PROPERTY
@given(timestamps())
def test_timestamps_the_fast_path_reads_match_pydantic(stamp: str) -> None:
    raw = example_json("message_opened", {"event_time": stamp})
    check(raw, "marketing")


PARSER = EventParser(max_future_skew=timedelta(days=1), accepted_currencies=frozenset({"USD"}))


def outcome(raw: bytes, kind: str) -> object:
    """The parser's event (as JSON) or its rejection (reason and message)."""
    try:
        return PARSER.parse(raw, kind, NOW).model_dump_json()
    except EventRejected as rejected:
        return (rejected.reason, rejected.message)


@PROPERTY
@given(messages())
def test_parser_outcomes_do_not_depend_on_the_fast_path(message: tuple[bytes, str]) -> None:
    fast = outcome(*message)
    with patch.object(schemas.parse, "decode_plain", lambda raw, kind: None):
        assert outcome(*message) == fast
