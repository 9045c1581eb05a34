"""The profile record's merge script against the real Redis gives what ``merge_profiles``
gives (which the unit tests check against the batch recomputation of both histories)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from crm_core.settings import Settings
from schemas import Event, example_event
from scorers.deltas import delta_for, epoch_seconds
from scorers.merge import merge_profiles
from scorers.profile import FIELD_CODES, Profile, apply_delta
from streams.state.keys import Layout
from streams.state.profiles import ApplyOutcome, ApplyRequest, RedisProfileStore
from streams.state.records import ProfileRecords

pytestmark = pytest.mark.integration

TYPES = ("order_placed", "order_returned", "ticket_opened", "ticket_resolved", "message_opened")
DAY = 86_400
T0 = 1_750_000_000 - 1_750_000_000 % DAY


def _history(rnd: random.Random, name: str) -> list[Event]:
    """A few events of random types, days and amounts (orders often share days)."""
    out = []
    for n in range(rnd.randint(0, 6)):
        event = example_event(rnd.choice(TYPES))
        moment = datetime.fromtimestamp(T0 + rnd.randint(0, 6) * DAY + rnd.randint(0, 999), UTC)
        out.append(event.model_copy(update={"event_time": moment, "event_id": f"{name}{n}"}))
    return sorted(out, key=lambda e: e.event_time)


def _fold(history: list[Event]) -> Profile:
    profile = Profile()
    for event in history:
        profile = apply_delta(profile, delta_for(event, {"USD": 1.0}))
    return profile


def _fields(profile: Profile) -> dict[str, int]:
    return {FIELD_CODES[k]: v for k, v in profile._asdict().items() if v is not None}


async def test_the_merge_script_gives_what_merge_profiles_gives(
    isolated_settings: Settings, redis_client: aioredis.Redis
) -> None:
    records = ProfileRecords(redis_client)
    key = Layout(isolated_settings.redis_key_prefix).profile("survivor")
    rnd = random.Random(18)
    legacy = Profile(first_purchase_at=T0, last_purchase_at=T0 + 3 * DAY, orders=3, gross_minor=900)
    pairs = [(_fold(_history(rnd, "a")), _fold(_history(rnd, "b"))) for _ in range(40)]
    pairs += [(legacy, pairs[0][1]), (pairs[1][0], legacy), (Profile(), pairs[2][1])]
    assert any(
        merge_profiles(a, b).purchase_days < a.purchase_days + b.purchase_days for a, b in pairs
    )  # some pairs share a purchase day
    try:
        for survivor, other in pairs:
            await redis_client.delete(key)
            if survivor != Profile():
                await records.write(key, _fields(survivor))
            await records.merge(key, other)
            assert Profile.from_redis(await records.read(key)) == merge_profiles(survivor, other)
    finally:
        await redis_client.delete(key)


async def test_the_other_customers_events_sent_again_are_refused_after_the_merge(
    isolated_settings: Settings, redis_client: aioredis.Redis
) -> None:
    settings, records = isolated_settings, ProfileRecords(redis_client)
    store = RedisProfileStore(redis_client, settings)
    layout = Layout(settings.redis_key_prefix)
    event = example_event("order_placed").model_copy(update={"customer_id": "other"})
    again = event.model_copy(update={"customer_id": "survivor"})  # forwarded, same event id
    fresh = again.model_copy(update={"event_id": "a-new-one"})
    try:
        await store.apply_batch([_request(event, 1)])
        other = await store.get_profile("other")
        seen = await records.get(layout.profile("other"), "ids")
        assert other is not None and seen
        await records.merge(layout.profile("survivor"), other, seen)
        results = await store.apply_batch([_request(again, 2), _request(fresh, 3)])
        assert [r.outcome for r in results] == [ApplyOutcome.DUPLICATE_ID, ApplyOutcome.APPLIED]
        assert await store.get_profile("survivor") == merge_profiles(other, _fold([fresh]))
    finally:
        for customer in ("other", "survivor"):
            await redis_client.delete(*layout.customer_keys(customer))
        await store.close()


def _request(event: Event, offset: int) -> ApplyRequest:
    return ApplyRequest(
        event.customer_id, event.kind, offset, event.event_id,
        epoch_seconds(event.event_time), delta_for(event, {"USD": 1.0}),
    )  # fmt: skip
