"""The profile record (streams/state/records.py): compact, and an old store keeps working.

``tests/data/profile_hash_v0.json`` holds two profiles exactly as the store wrote them before
the record existed (``HGETALL`` of the hash a pipeline run left: one customer with purchases,
tickets, messages, pending churn labels and a saved round; one with messages only).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from crm_core.settings import Settings
from scorers.customer_state import CustomerState
from scorers.dedup import event_id_hash
from scorers.profile import Profile, ProfileDelta, apply_delta
from streams.state.profiles import ApplyOutcome, ApplyRequest, RedisProfileStore, connect_redis
from streams.state.query_index import CustomerIndex
from streams.state.records import ProfileRecords
from streams.state.round_store import RoundStore
from tests.paths import DATA

pytestmark = pytest.mark.integration

_OLD = json.loads((DATA / "profile_hash_v0.json").read_text())
_BUYER, _READER = sorted(_OLD)  # the customer who buys, the one who only reads messages
#: The fields an order changes (profile, offset, apply number): every other one is kept.
_ORDER_CHANGES = {b"n", b"g", b"fp", b"lp", b"xp", b"pd", b"fa", b"op", b"ja"}
_SEEN_BEFORE = "order-applied-before-the-upgrade"


@pytest.fixture
async def old_store(base_settings: Settings) -> AsyncIterator[tuple[Settings, RedisProfileStore]]:
    """A fresh prefix holding the two profiles in the old layout (a hash of text fields)."""
    settings = base_settings.model_copy(update={"redis_key_prefix": f"rec-{uuid.uuid4().hex[:8]}"})
    client = connect_redis(settings)
    store = RedisProfileStore(client, settings)
    for customer, fields in _OLD.items():
        await client.hset(store.profile_key(customer), mapping=fields)
    at = int(_OLD[_BUYER]["lp"]).to_bytes(4, "big")  # the old layout's seen ids: their own key
    await client.set(store.seen_key(_BUYER), event_id_hash(_SEEN_BEFORE) + b"p" + at)
    try:
        yield settings, store
    finally:
        await client.delete(*[store.profile_key(c) for c in _OLD])
        await client.delete(*[store.seen_key(c) for c in _OLD])
        await client.delete(*[store.journal_key(c) for c in _OLD])
        await store.close()
        await client.aclose()


def _old_bytes(customer: str) -> dict[bytes | str, bytes | str]:
    return {k.encode(): v.encode() for k, v in _OLD[customer].items()}


def _order(customer: str, offset: int) -> ApplyRequest:
    fields = _OLD[customer]
    at = int(fields.get("lp", fields["le"])) + 86_400  # a day after the last one it knows
    delta = ProfileDelta(
        adds={"orders": 1, "gross_minor": 2500},
        maxes={"last_purchase_at": at, "last_purchase_event_at": at},
        mins={"first_purchase_at": at},
        order=(at, 2500),
    )
    return ApplyRequest(customer, "purchase", offset, f"new-order-{customer}", at, delta)


async def test_an_old_hash_reads_as_it_did(
    old_store: tuple[Settings, RedisProfileStore],
) -> None:
    _, store = old_store
    for customer in _OLD:
        assert await store.read_fields(customer) == _old_bytes(customer)
        assert await store.get_profile(customer) == Profile.from_redis(_old_bytes(customer))


async def test_a_round_on_an_old_store_reads_it_and_writes_records(
    old_store: tuple[Settings, RedisProfileStore],
) -> None:
    """The worker's round over an old store: it reads each profile, alert state and index as
    the hash held them, applies new events on top, and leaves records holding everything the
    hash held (with the new event applied); a redelivery is not applied twice."""
    settings, store = old_store
    client = connect_redis(settings)
    rounds = RoundStore(client, store, settings)
    try:
        offset = int(_OLD[_BUYER]["op"]) + 1
        requests = [_order(_BUYER, offset), _order(_READER, 0)]
        before, outcomes = await rounds.load_and_apply(dict.fromkeys(_OLD, 0), requests)
        for customer in _OLD:
            raw = _old_bytes(customer)
            assert before[customer].profile == Profile.from_redis(raw)
            assert before[customer].state == CustomerState.from_bytes(raw[b"as"])
            assert before[customer].state != CustomerState()
        assert [o.outcome for o in outcomes] == [ApplyOutcome.APPLIED] * 2

        for request, outcome in zip(requests, outcomes, strict=True):
            customer = request.customer_id
            old = Profile.from_redis(_old_bytes(customer))
            assert outcome.profile == apply_delta(old, request.delta)
            assert await client.type(store.profile_key(customer)) == b"string"
            fields = await store.read_fields(customer)
            assert Profile.from_redis(fields) == outcome.profile
            kept = {k: v for k, v in _old_bytes(customer).items() if k not in _ORDER_CHANGES}
            assert b"as" in kept and b"ix" in kept and b"jw" in kept
            assert {k: fields.get(k) for k in kept} == kept
            assert fields[b"op"] == str(request.offset).encode()
            assert int(fields[b"ja"]) == int(_OLD[customer]["ja"]) + 1
            index = CustomerIndex.from_bytes(fields[b"ix"])
            assert index == CustomerIndex.from_bytes(_OLD[customer]["ix"])

        again = await store.apply_batch(requests)
        assert all(r.outcome is not ApplyOutcome.APPLIED for r in again)
        # The ids seen before the upgrade moved into the record, with the new one.
        assert not await client.exists(store.seen_key(_BUYER))
        seen = await ProfileRecords(client).get(store.profile_key(_BUYER), "ids")
        assert seen is not None and len(seen) == 26
        assert event_id_hash(_SEEN_BEFORE) in seen and event_id_hash(requests[0].event_id) in seen
        resent = requests[0]._replace(offset=offset + 1, event_id=_SEEN_BEFORE)
        assert [r.outcome for r in await store.apply_batch([resent])] == [ApplyOutcome.DUPLICATE_ID]
        for outcome in outcomes:
            assert outcome.profile is not None
        assert [await store.get_profile(r.customer_id) for r in requests] == [
            o.profile for o in outcomes
        ]
    finally:
        await rounds.close()
        await client.aclose()


async def test_a_record_is_a_fraction_of_the_hash(
    old_store: tuple[Settings, RedisProfileStore],
) -> None:
    """The same fields as a record take less than half the memory of the old hash."""
    settings, store = old_store
    client = connect_redis(settings)
    try:
        key = store.profile_key(_BUYER)
        old = int(await client.memory_usage(key, samples=0) or 0)
        await ProfileRecords(client).write(key, {"jw": _OLD[_BUYER]["jw"]})  # rewritten whole
        new = int(await client.memory_usage(key, samples=0) or 0)
        assert await store.read_fields(_BUYER) == _old_bytes(_BUYER)
        assert new * 2 < old
    finally:
        await client.aclose()
