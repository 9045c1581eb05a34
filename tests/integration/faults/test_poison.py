"""Poison flood: 10,000+ malformed messages mixed into the valid traffic of the standard
history. Every one is dead-lettered with its reason, the valid events' results (profiles, alert
states, due-index, alerts) equal the clean run's, and throughput does not collapse (measured
and printed next to the clean run's; not asserted, timing on a shared 2-core machine varies).

Poison pills: the largest key and value the broker accepts are dead-lettered within its limit,
and a dead letter the topic still refuses is quarantined while the offset moves on.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.simulate import MALFORMATION_REASONS, SimulatedMessage, SimulationConfig, simulate
from schemas import DEAD_LETTER_MAX_BYTES, DeadLetter, EventParser, example_json
from schemas import DeadLetterReason as R
from streams.ingest.quarantine import Quarantine
from streams.ingest.topics import ensure_topics
from streams.state import connect_redis
from tests.integration.harness import WorkerProcess, read_profiles, read_records, wait_caught_up
from tests.integration.histories import (
    REFERENCE_SECONDS,
    assert_matches_clean,
    fault_settings,
    publish_models,
    read_all,
    read_outcome,
    standard_history,
    standard_reference,
)
from tests.oracle import recompute_profiles

pytestmark = pytest.mark.integration

POISON = 12_000


def _poison(start_like: list[SimulatedMessage]) -> list[SimulatedMessage]:
    """Malformed messages of every kind the simulator makes, over the same year, for customers
    of their own (rejected messages touch no state, whatever their key)."""
    config = SimulationConfig(
        customers=3000,
        days=365,
        seed=7,
        start=min(m.event_time for m in start_like),
        malformed_fraction=0.3,
        id_prefix="poison-",
    )
    bad = [m for m in simulate(config) if m.fault in MALFORMATION_REASONS]
    assert len(bad) >= POISON, len(bad)
    return bad[:POISON]


async def test_poison_flood_is_dead_lettered_and_changes_nothing(
    base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    history = standard_history()
    reference = await standard_reference(base_settings, tmp_path / "clean.log")
    poison = _poison(history.messages)
    mixed = sorted(history.messages + poison, key=lambda m: m.event_time)
    settings = fault_settings(base_settings, history)
    await publish_models(settings, history)
    await produce_messages(settings, mixed)
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    try:
        await worker.start()
        await worker.wait_ready()
        started = time.monotonic()
        await wait_caught_up(settings, [worker], timeout=240)
        seconds = time.monotonic() - started
    finally:
        await worker.stop()

    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    malformed = [m for m in mixed if m.fault in MALFORMATION_REASONS]
    letters = [DeadLetter.from_json_bytes(v) for v in await read_all(settings, "deadletter")]
    got = Counter(letter.reason.value for letter in letters)
    want = Counter(MALFORMATION_REASONS[str(m.fault)] for m in malformed)
    assert got == want, f"dead letters by reason {dict(got)} != {dict(want)}"
    assert all(letter.message for letter in letters), "a dead letter without a message"

    clean = REFERENCE_SECONDS.get("standard")
    rate = len(mixed) / seconds
    print(
        f"\npoison flood: {len(poison):,} poison + {len(history.messages):,} history messages "
        f"in {seconds:.1f} s = {rate:,.0f} msg/s; dead letters {dict(got)}"
    )
    if clean:
        print(
            f"clean run: {len(history.messages):,} messages in {clean:.1f} s = "
            f"{len(history.messages) / clean:,.0f} msg/s (valid events/s with the flood: "
            f"{len(history.messages) / seconds:,.0f})"
        )


# --- poison pills: one message whose dead letter could not be produced ------------------------
PILL_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PillRun:
    """What a worker run left: where the messages landed, its metrics and its log."""

    offsets: list[int]
    metrics: str
    log: str


def _order(customer: str, event_id: str) -> bytes:
    changes = {"customer_id": customer, "event_id": event_id, "event_time": PILL_AT.isoformat()}
    return example_json("order_placed", changes)


def _plain_producer(settings: Settings) -> AIOKafkaProducer:
    """Not idempotent (a refused batch would break its sequence numbers) and no client-side
    size limit, so the broker decides what is too large."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", max_request_size=8 << 20
    )


async def _create_topic(settings: Settings, name: str, **configs: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        topic = NewTopic(settings.topic(name), settings.partitions, 1, topic_configs=configs)
        await admin.create_topics([topic])
    finally:
        await admin.close()


async def _largest_accepted(settings: Settings, producer: AIOKafkaProducer) -> int:
    """The largest key + value (half each) the broker accepts in a topic with its defaults,
    found by sending: Kafka's limit is on the whole record batch, overheads included."""
    await _create_topic(settings, "probe")
    accepted, refused = 1 << 19, 1 << 21
    while refused - accepted > 1:
        size = (accepted + refused) // 2
        key, value = b"k" * (size // 2), b"v" * (size - size // 2)
        try:
            await (await producer.send(settings.topic("probe"), key=key, value=value))
            accepted = size
        except MessageSizeTooLargeError:
            refused = size
    return accepted


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def _run(settings: Settings, log: Path, *batches: list[tuple[bytes, bytes]]) -> PillRun:
    """Produce each batch to partition 0 of the purchase topic and wait until the worker has
    committed it (it must stay up throughout)."""
    producer = _plain_producer(settings)
    await producer.start()
    await ensure_topics(settings)
    worker = WorkerProcess(settings, str(log))
    offsets: list[int] = []
    try:
        await worker.start()
        for batch in batches:
            for key, value in batch:
                sent = await producer.send(settings.topic("purchase"), value, key, partition=0)
                offsets.append((await sent).offset)
            await wait_caught_up(settings, [worker], timeout=90)
        assert worker.proc is not None and worker.proc.returncode is None, worker.log_tail()
        metrics = await asyncio.to_thread(_metrics, worker.web_port)
    finally:
        await producer.stop()
        await worker.stop()
    return PillRun(offsets, metrics, worker.log_tail(1 << 20))


async def _check_profile(settings: Settings, customer: str, values: list[bytes]) -> None:
    events = [EventParser().parse(v, "purchase", datetime.now(UTC)) for v in values]
    expected = recompute_profiles(events)[customer]
    assert (await read_profiles(settings, [customer])).get(customer) == expected


async def test_largest_key_and_value_the_broker_accepts_are_dead_lettered_within_its_limit(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings
    producer = _plain_producer(settings)
    await producer.start()
    try:
        largest = await _largest_accepted(settings, producer)
    finally:
        await producer.stop()
    half = largest // 2
    pills = [
        (b"p" * 600_000, _order("pill-1", "pill")),  # the case: a ~600 KB key
        (b"k" * half, b"v" * (largest - half)),  # the largest record the broker takes
        (b"k" * (largest - 1), b"v"),  # the largest key
    ]
    reasons = [R.KEY_MISMATCH, R.TOO_LARGE, R.NOT_JSON]
    valid = [_order("pill-1", "before"), _order("pill-1", "after")]
    batch = [(b"pill-1", valid[0]), *pills, (b"pill-1", valid[1])]

    run = await _run(settings, tmp_path / "worker.log", batch)

    assert not any(w in run.log for w in ("Traceback", "[ERROR]")), run.log[-4000:]
    records = await read_records(settings, "deadletter", len(pills))
    letters = {DeadLetter.from_json_bytes(value).offset: (key, value) for key, value in records}
    assert sorted(letters) == run.offsets[1:-1], f"dead letters at {sorted(letters)}"
    for (key, value), reason, offset in zip(pills, reasons, run.offsets[1:-1], strict=True):
        kafka_key, kafka_value = letters[offset]
        assert kafka_key is not None
        assert len(kafka_key) + len(kafka_value) <= DEAD_LETTER_MAX_BYTES
        letter = DeadLetter.from_json_bytes(kafka_value)
        assert letter.reason is reason
        assert (letter.key_size, letter.value_size) == (len(key), len(value))
        assert letter.key_sha256 == hashlib.sha256(key).hexdigest()
        assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
        assert kafka_key == letter.original_key() == key[: len(kafka_key)]
        assert letter.key_truncated and len(kafka_key) < len(key)
        assert value.startswith(letter.original_value())
    await _check_profile(settings, "pill-1", valid)
    print(f"\nlargest record the broker accepted: key + value = {largest:,} bytes")


async def test_a_dead_letter_the_topic_refuses_is_quarantined_and_the_offset_moves_on(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings
    await _create_topic(settings, "deadletter", **{"max.message.bytes": "2048"})
    valid = [_order("q-1", "before"), _order("q-1", "after")]
    refused = b"x" * 3000  # not JSON; its dead letter is over 4 KB
    small = b"{"  # not JSON either; its dead letter fits in 2 KB

    run = await _run(
        settings,
        tmp_path / "worker.log",
        [(b"q-1", valid[0]), (b"q-1", refused)],
        [(b"q-1", small), (b"q-1", valid[1])],  # after the refusal: the producer still works
    )

    records = await read_records(settings, "deadletter", 1)
    letters = [DeadLetter.from_json_bytes(value) for _, value in records]
    assert [(x.offset, x.original_value()) for x in letters] == [(run.offsets[2], small)]
    client = connect_redis(settings)
    try:
        entries = await Quarantine(client, settings.redis_key_prefix, 10).entries()
    finally:
        await client.aclose()
    assert len(entries) == 1, entries
    entry = entries[0]
    assert isinstance(entry["dead_letter"], dict) and "MessageSizeTooLarge" in str(entry["error"])
    letter = DeadLetter.model_validate(entry["dead_letter"])
    assert (letter.reason, letter.offset, letter.value_size) == (R.NOT_JSON, run.offsets[1], 3000)
    assert letter.value_sha256 == hashlib.sha256(refused).hexdigest()
    assert refused.startswith(letter.original_value())
    errors = [line for line in run.log.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "quarantined" in errors[0], errors
    assert "Traceback" not in run.log, run.log[-4000:]
    assert "crm_deadletters_quarantined_total 1.0" in run.metrics
    await _check_profile(settings, "q-1", valid)
