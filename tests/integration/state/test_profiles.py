"""The Redis store against a from-scratch recomputation, with duplicates and redeliveries."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.settings import Settings
from schemas import Event, EventParser, PurchaseEvent, example_event_dict
from scorers.dedup import Dedup, Verdict
from scorers.deltas import delta_for, epoch_seconds
from scorers.profile import Profile
from streams.state.profiles import ApplyOutcome, ApplyRequest, RedisProfileStore, connect_redis
from streams.state.records import ProfileRecords
from tests.oracle import recompute_profiles
from tests.strategies import delivery_histories

pytestmark = pytest.mark.integration


def _request(event: Event, offset: int) -> ApplyRequest:
    return ApplyRequest(
        customer_id=event.customer_id,
        kind=event.kind,
        offset=offset,
        event_id=event.event_id,
        event_time=epoch_seconds(event.event_time),
        delta=delta_for(event, {"USD": 1.0}),
    )


async def _replay(
    settings: Settings, records: list[Event], reads: list[int], batch_sizes: list[int]
) -> dict[str, Profile]:
    client = connect_redis(settings)
    store = RedisProfileStore(client, settings, key_prefix=f"prop-{uuid.uuid4().hex[:8]}")
    try:
        # One "partition" per kind: each kind's records get their own offset sequence.
        offsets: dict[str, int] = {}
        offset_of: list[int] = []
        for event in records:
            offset_of.append(offsets.get(event.kind, 0))
            offsets[event.kind] = offset_of[-1] + 1
        requests = [_request(records[i], offset_of[i]) for i in reads]
        position, sizes = 0, iter(batch_sizes)
        while position < len(requests):
            size = next(sizes, 7)
            await store.apply_batch(requests[position : position + size])
            position += size
        profiles = {}
        for cid in {e.customer_id for e in records}:
            found = await store.get_profile(cid)
            assert found is not None
            profiles[cid] = found
        return profiles
    finally:
        await store.close()
        await client.aclose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(delivery_histories(), st.lists(st.integers(1, 12), max_size=20))
def test_redis_state_equals_batch_recomputation(
    history: tuple[list[Event], list[int]], batch_sizes: list[int]
) -> None:
    records, reads = history
    state = asyncio.run(_replay(Settings(), records, reads, batch_sizes))
    oracle = recompute_profiles(records)
    # Reads here are in any time order: every field commutes but the transaction-day count,
    # which is exact in event-time order (tests/integration/models/test_cdnow_fit.py) and otherwise
    # never below the truth (scorers/profile.py).
    assert {c: p._replace(purchase_days=0) for c, p in state.items()} == {
        c: p._replace(purchase_days=0) for c, p in oracle.items()
    }
    assert all(p.purchase_days >= oracle[c].purchase_days for c, p in state.items())


async def test_outcomes_say_what_happened(base_settings: Settings) -> None:
    raw = example_event_dict("order_placed")
    event = PurchaseEvent.model_validate(raw)
    again = PurchaseEvent.model_validate({**raw})  # the producer sent it twice
    client = connect_redis(base_settings)
    store = RedisProfileStore(client, base_settings, key_prefix=f"o-{uuid.uuid4().hex[:8]}")
    try:
        first = await store.apply_batch([_request(event, 0)])
        # Not saved yet (no round recorded its walk): the redelivery is walked again.
        recovered = await store.apply_batch([_request(event, 0)])
        await store.write_fields(event.customer_id, {"jw": first[0].seq})  # saved
        redelivered = await store.apply_batch([_request(event, 0)])
        duplicate = await store.apply_batch([_request(again, 1)])
        journal = await client.hlen(store.journal_key(event.customer_id))
    finally:
        await store.close()
        await client.aclose()
    assert [r.outcome for r in first + recovered + redelivered + duplicate] == [
        ApplyOutcome.APPLIED,
        ApplyOutcome.RECOVERED,
        ApplyOutcome.REDELIVERED,
        ApplyOutcome.DUPLICATE_ID,
    ]
    assert first[0].profile is not None and first[0].profile.orders == 1
    assert recovered[0].profile == first[0].profile and recovered[0].seq == first[0].seq == 1
    assert journal == 0, "a saved event's journal entry is dropped when it is redelivered"


async def test_events_older_than_the_window_are_refused_not_double_counted(
    base_settings: Settings,
) -> None:
    window_days = 30
    settings_ = base_settings.model_copy(update={"dedup_window_days": window_days})
    old = PurchaseEvent.model_validate(example_event_dict("order_placed"))
    later_raw = example_event_dict("order_placed")
    later_raw["event_id"] = "later"
    later_raw["event_time"] = "2026-03-01T00:00:00+00:00"  # > 30 days after `old`
    later = PurchaseEvent.model_validate(later_raw)
    client = connect_redis(settings_)
    store = RedisProfileStore(client, settings_, key_prefix=f"w-{uuid.uuid4().hex[:8]}")
    try:
        await store.apply_batch([_request(old, 0), _request(later, 1)])
        seen = await ProfileRecords(client).get(store.profile_key(old.customer_id), "ids")
        # the old id fell out of the window: a re-send cannot be proven new and is refused
        again = await store.apply_batch([_request(old, 2)])
        profile = await store.get_profile(old.customer_id)
    finally:
        await store.close()
        await client.aclose()
    assert seen is not None and len(seen) == 13
    assert again[0].outcome is ApplyOutcome.BEYOND_WINDOW
    assert profile is not None and profile.orders == 2


async def test_events_released_out_of_offset_order_apply_once_each(
    base_settings: Settings,
) -> None:
    """The reorder buffer releases by event time, so a lower offset can come after a higher one:
    it is applied (its id was never seen), and redelivering either is skipped."""
    first_raw = example_event_dict("order_placed")
    second_raw = {**first_raw, "event_id": "second"}
    earlier = PurchaseEvent.model_validate(first_raw)  # offset 10, released second
    later = PurchaseEvent.model_validate(second_raw)  # offset 11, released first
    client = connect_redis(base_settings)
    store = RedisProfileStore(client, base_settings, key_prefix=f"r-{uuid.uuid4().hex[:8]}")
    try:
        applied = await store.apply_batch([_request(later, 11), _request(earlier, 10)])
        await store.write_fields(earlier.customer_id, {"jw": applied[-1].seq})
        again = await store.apply_batch([_request(earlier, 10), _request(later, 11)])
        profile = await store.get_profile(earlier.customer_id)
        offset = (await store.read_fields(earlier.customer_id)).get(b"op")
    finally:
        await store.close()
        await client.aclose()
    assert [r.outcome for r in applied] == [ApplyOutcome.APPLIED, ApplyOutcome.APPLIED]
    assert [r.outcome for r in again] == [ApplyOutcome.REDELIVERED, ApplyOutcome.REDELIVERED]
    assert profile is not None and profile.orders == 2
    assert offset == b"11"


async def test_offline_dedup_rule_agrees_with_the_redis_script(base_settings: Settings) -> None:
    """scorers.dedup (crm-score fit/evaluate on event files) and the apply script give every
    event the same verdict, in whatever order they come: ids repeat within and across customers
    and kinds, and times jump back and forth over four dedup windows."""
    rnd = random.Random(7)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    types = {"purchase": "order_placed", "service": "ticket_opened", "marketing": "message_sent"}
    parser = EventParser()
    events: list[Event] = []
    for _ in range(400):
        kind = rnd.choice(list(types))
        raw = example_event_dict(types[kind])
        raw.update(
            customer_id=rnd.choice(["c1", "c2", "c3"]),
            event_id=f"e{rnd.randrange(60)}",
            event_time=(start + timedelta(days=rnd.uniform(0, 120))).isoformat(),
        )
        events.append(parser.parse(orjson.dumps(raw), kind, datetime.now(UTC)))
    offsets: Counter[str] = Counter()
    requests = []
    for event in events:  # in this (time-shuffled) order: offsets rise, times jump back and forth
        requests.append(_request(event, offsets[event.kind]))
        offsets[event.kind] += 1
    settings_ = base_settings.model_copy(update={"dedup_window_days": 30})
    client = connect_redis(settings_)
    store = RedisProfileStore(client, settings_, key_prefix=f"d-{uuid.uuid4().hex[:8]}")
    try:
        outcomes = await store.apply_batch(requests)
    finally:
        await store.close()
        await client.aclose()
    dedup = Dedup(30 * 86400)
    offline = [dedup.admit_event(event) for event in events]
    assert set(offline) == set(Verdict), "the history does not exercise every verdict"
    assert [_LIVE[o.outcome] for o in outcomes] == offline


_LIVE = {
    ApplyOutcome.APPLIED: Verdict.NEW,
    ApplyOutcome.DUPLICATE_ID: Verdict.DUPLICATE,
    ApplyOutcome.BEYOND_WINDOW: Verdict.BEYOND_WINDOW,
}
