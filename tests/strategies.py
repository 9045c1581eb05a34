"""Hypothesis strategies for valid input events and delivery histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from schemas import EVENT_MODELS, EVENT_TYPES, Event, example_event_dict

START = datetime(2026, 1, 1, tzinfo=UTC)
EVENT_TYPE_NAMES = sorted(EVENT_TYPES)


@st.composite
def events(draw: st.DrawFn, customers: int = 4, span: timedelta = timedelta(days=20)) -> Event:
    """A valid event of any type, for one of a few customers, within ``span`` of START."""
    event_type = draw(st.sampled_from(EVENT_TYPE_NAMES))
    raw: dict[str, Any] = example_event_dict(event_type)
    seconds = draw(st.integers(0, int(span.total_seconds())))
    at = START + timedelta(seconds=seconds)
    raw["event_id"] = draw(st.uuids()).hex
    raw["customer_id"] = f"c-{draw(st.integers(0, customers - 1))}"
    raw["event_time"] = at.isoformat()
    payload = raw["payload"]
    kind = EVENT_TYPES[event_type]
    if kind == "purchase":
        payload["amount_minor"] = draw(st.integers(0, 500_000))
    elif kind == "service":
        payload["complaint"] = draw(st.booleans())
        payload["satisfaction"] = draw(st.none() | st.integers(1, 5))
        if event_type == "ticket_resolved":
            opened = at - timedelta(seconds=draw(st.integers(0, 10 * 86_400)))
            payload["opened_at"] = draw(st.none() | st.just(opened.isoformat()))
    return EVENT_MODELS[kind].model_validate(raw)


@st.composite
def delivery_histories(draw: st.DrawFn) -> tuple[list[Event], list[int]]:
    """Records as produced (with producer duplicates) and the order a consumer reads them in.

    Returns ``(records, reads)``: ``records[i]`` sits at offset ``i``; ``reads`` is the sequence of
    offsets processed, in order, including rewinds (redelivery after a crash or rebalance).
    """
    originals = draw(st.lists(events(), min_size=1, max_size=40))
    records = list(originals)
    for _ in range(draw(st.integers(0, 8))):  # the producer sends some events again
        records.insert(
            draw(st.integers(0, len(records))),
            records[draw(st.integers(0, len(records) - 1))],
        )
    reads: list[int] = []
    position = 0
    while position < len(records):
        step = draw(st.integers(1, len(records) - position))
        reads.extend(range(position, position + step))
        position += step
        if draw(st.integers(0, 3)) == 0:  # crash: resume from an earlier committed offset
            position = draw(st.integers(0, position))
    return records, reads
