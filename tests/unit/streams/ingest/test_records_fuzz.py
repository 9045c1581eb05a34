"""Fuzz the ingest path: whatever a producer sends, each record is accepted or dead-lettered.

:meth:`streams.ingest.records.PipelineProcessor.parse` is what the worker runs on every fetched
record (parse, validate, key check, store delta, dead letter). Hypothesis feeds it arbitrary
bytes, arbitrary JSON (huge numbers, NaN, deep nesting, NUL characters), valid events cut or
spliced with such bytes, and arbitrary keys; every record must end as exactly one of an
accepted event or a dead letter that names a reason and fits in a Kafka message, and nothing
may raise. About 2,400 cases, ~15 s of CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.settings import Settings
from schemas import DEAD_LETTER_MAX_BYTES, EVENT_TYPES, DeadLetter, DeadLetterReason, example_json
from streams.ingest.records import PipelineProcessor

NOW = datetime(2026, 1, 6, tzinfo=UTC)  # a day after the examples' event time
PROCESSOR = PipelineProcessor(Settings(fx_rates={"USD": 1.0, "EUR": 1.1}))
TOPICS = {kind: Settings().topic(kind) for kind in ("purchase", "service", "marketing")}
FUZZ = settings(
    max_examples=800,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True, slots=True)
class FuzzRecord:
    """A consumed message as the pipeline reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = 1_767_603_600_000


# --- what producers might send ------------------------------------------------------------------
huge_numbers = st.integers(min_value=-(10**400), max_value=10**400) | st.sampled_from(
    [2**63, 2**64, -(2**63) - 1, 10**12, 10**12 + 1, 1e308, 1e-320, -0.0]
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_numbers
    | st.floats()  # NaN and infinities become bare NaN / Infinity tokens
    | st.text(max_size=30)  # any code point, NUL included
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)


def _nested(depth: int, brackets: tuple[bytes, bytes]) -> bytes:
    opener, closer = brackets
    return opener * depth + b"0" + closer * depth


deep = st.builds(
    _nested,
    st.integers(min_value=1, max_value=1000),
    st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b"[", b"}")]),
)
valid_events = st.sampled_from(sorted(EVENT_TYPES)).map(lambda t: example_json(t))
splices = st.binary(max_size=20) | st.sampled_from(
    [b"\x00", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\\u0000", b"\\ud800", b'"', b"\\", b"NaN"]
)
fields = st.sampled_from(
    ["customer_id", "event_id", "event_time", "type", "schema_version", "owner", "contact",
     "payload", "payload.amount_minor", "payload.currency", "payload.items", "payload.text",
     "payload.satisfaction", "payload.opened_at", "nonsense"]
)  # fmt: skip


@st.composite
def spliced_events(draw: st.DrawFn) -> bytes:
    """A valid event with bytes inserted, replaced or cut at some position."""
    raw = draw(valid_events)
    at = draw(st.integers(min_value=0, max_value=len(raw)))
    cut = draw(st.integers(min_value=0, max_value=8))
    return raw[:at] + draw(splices) + raw[at + cut :]


@st.composite
def changed_events(draw: st.DrawFn) -> bytes:
    """A valid event with one field set to arbitrary JSON (json.dumps: ints beyond 64 bits)."""
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    document: dict[str, Any] = json.loads(example_json(event_type))
    path = draw(fields).split(".")
    node = document
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node.get(part), dict) else {}
    if not draw(st.booleans()):
        node[path[-1]] = draw(json_values)
        return json.dumps(document).encode()
    node[path[-1]] = "<deep>"  # spliced in as text: the test's own parser would recurse
    return json.dumps(document).encode().replace(b'"<deep>"', draw(deep), 1)


@st.composite
def duplicated_events(draw: st.DrawFn) -> bytes:
    """A valid event with one of its keys written a second time, earlier in the same object."""
    raw = draw(valid_events)
    keys = [chunk.split(b'"')[-1] for chunk in raw.split(b'":')[:-1]]
    key = draw(st.sampled_from(keys))
    value = draw(json_values.map(lambda v: json.dumps(v).encode()))
    first = raw.index(b'"' + key + b'":')
    return raw[:first] + b'"' + key + b'":' + value + b"," + raw[first:]


values = (
    st.none()
    | st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | deep
    | valid_events
    | spliced_events()
    | changed_events()
    | duplicated_events()
)
keys = (
    st.none()
    | st.binary(max_size=40)
    | st.sampled_from([b"c-42", b"c-42\x00", b"\xff", b"k" * 700_000])  # the last: over 1 MB in v1
)


@st.composite
def records(draw: st.DrawFn) -> list[FuzzRecord]:
    """One fetch: a few records of any topic, each with its own offset."""
    drawn = draw(st.lists(st.tuples(st.sampled_from(sorted(TOPICS)), keys, values), max_size=4))
    return [
        FuzzRecord(TOPICS[kind], offset % 4, offset, key, value)
        for offset, (kind, key, value) in enumerate(drawn)
    ]


# --- the property ------------------------------------------------------------------------------
def assert_each_record_accepted_or_dead_lettered(batch: list[FuzzRecord]) -> None:
    """The pipeline decides every record exactly once and its dead letters are complete."""
    parsed = PROCESSOR.parse(batch, NOW)
    accepted = [item.record.offset for item in parsed.accepted]
    for message in parsed.result.dead_letters:
        assert len(message.key or b"") + len(message.value) <= DEAD_LETTER_MAX_BYTES
    letters = [DeadLetter.from_json_bytes(m.value) for m in parsed.result.dead_letters]
    assert sorted(accepted + [letter.offset for letter in letters]) == [r.offset for r in batch]
    assert parsed.result.consumed == len(batch)
    assert sum(parsed.result.dead_letter_reasons.values()) == len(letters)
    for item in parsed.accepted:
        assert item.record.key == item.event.customer_id.encode()
        assert item.event.kind == next(k for k, t in TOPICS.items() if t == item.record.topic)
    for letter, record in zip(letters, [r for r in batch if r.offset not in accepted], strict=True):
        assert letter.reason in DeadLetterReason
        assert letter.reason is not DeadLetterReason.BEYOND_DEDUP_WINDOW  # the store's call
        assert 0 < len(letter.message) <= 300
        assert (letter.source_topic, letter.partition) == (record.topic, record.partition)
        assert letter.original_value() == (record.value or b"")


@FUZZ
@given(records())
def test_any_fetch_is_accepted_or_dead_lettered_record_by_record(batch: list[FuzzRecord]) -> None:
    assert_each_record_accepted_or_dead_lettered(batch)


@FUZZ
@given(st.sampled_from(sorted(TOPICS)), keys, st.binary(min_size=1, max_size=2000))
def test_arbitrary_bytes_never_raise(kind: str, key: bytes | None, value: bytes) -> None:
    assert_each_record_accepted_or_dead_lettered([FuzzRecord(TOPICS[kind], 0, 0, key, value)])


@FUZZ
@given(st.sampled_from(sorted(TOPICS)), duplicated_events())
def test_a_key_written_twice_is_never_accepted(kind: str, value: bytes) -> None:
    record = FuzzRecord(TOPICS[kind], 0, 0, b"c-42", value)
    parsed = PROCESSOR.parse([record], NOW)
    assert not parsed.accepted
    assert len(parsed.result.dead_letters) == 1
