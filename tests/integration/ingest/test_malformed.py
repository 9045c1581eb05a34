"""Malformed input through the real worker: dead-lettered with its reason, nothing else harmed.

Every malformed message must land in the dead-letter topic exactly once, with the right reason,
its source coordinates and its original bytes; the valid events around it (same customers,
same topics) must be applied as if it had never been sent; and every consumed message must be
accounted for: applied (one score snapshot each) + duplicates + dead-lettered = consumed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from crm_core.settings import INPUT_KINDS, Settings
from crm_score.simulate import MALFORMATION_REASONS, SimulationConfig, simulate
from schemas import EVENT_TYPES, DeadLetter, DeadLetterReason, Event, EventParser
from schemas.examples import REMOVE, example_json
from streams.ingest.topics import ensure_topics
from tests.integration.harness import WorkerProcess, read_profiles, read_topic, wait_caught_up
from tests.oracle import recompute_profiles

pytestmark = pytest.mark.integration

R = DeadLetterReason


@dataclass(frozen=True, slots=True)
class Message:
    """One message to produce; ``reason`` is the expected dead-letter reason, None if valid."""

    label: str
    kind: str
    key: bytes | None
    value: bytes | None
    reason: R | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """A produced message and where Kafka put it."""

    message: Message
    topic: str
    partition: int
    offset: int


# --- producing and reading back ----------------------------------------------------------------


async def _produce(settings: Settings, messages: Sequence[Message]) -> list[Sent]:
    """Send in order with exact keys and values (None = tombstone); where each one landed."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        **settings.kafka_client_options(),
    )
    await producer.start()
    try:
        futures = [
            await producer.send(settings.topic(m.kind), value=m.value, key=m.key) for m in messages
        ]
        landed = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [
        Sent(m, settings.topic(m.kind), md.partition, md.offset)
        for m, md in zip(messages, landed, strict=True)
    ]


async def _message_count(settings: Settings, names: Sequence[str]) -> int:
    """Messages in the topics (end offsets; the test's topics are fresh and never compacted)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(settings.topic(name), p)
            for name in names
            for p in range(settings.partitions)
        ]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def _run_worker(settings: Settings, log: Path, *batches: Sequence[Message]) -> list[Sent]:
    """Produce each batch and wait until the worker committed it; it must stay up, log no error."""
    await ensure_topics(settings)
    worker = WorkerProcess(settings, str(log))
    await worker.start()
    sent: list[Sent] = []
    try:
        for batch in batches:
            sent += await _produce(settings, batch)
            await wait_caught_up(settings, [worker])
        assert worker.proc is not None and worker.proc.returncode is None, worker.log_tail()
    finally:
        await worker.stop()
    logged = worker.log_tail(1 << 20)
    assert not any(w in logged for w in ("Traceback", "[ERROR]", "[CRITICAL]")), worker.log_tail()
    return sent


async def _dead_letters(settings: Settings) -> list[DeadLetter]:
    """Every dead letter; call after the worker caught up (it publishes before committing)."""
    count = await _message_count(settings, ["deadletter"])
    raw = await read_topic(settings, "deadletter", count)
    assert len(raw) == count, f"read {len(raw)} of {count} dead letters"
    return [DeadLetter.from_json_bytes(value) for value in raw]


async def _check_dead_letters(settings: Settings, sent: Sequence[Sent]) -> Counter[str]:
    """Each malformed message has exactly one correct dead letter and nothing else has one."""
    expected = {(s.topic, s.partition, s.offset): s for s in sent if s.message.reason is not None}
    letters = await _dead_letters(settings)
    by_coordinate: dict[tuple[str, int, int], list[DeadLetter]] = {}
    for letter in letters:
        coordinate = (letter.source_topic, letter.partition, letter.offset)
        by_coordinate.setdefault(coordinate, []).append(letter)
    problems = [
        f"unexpected dead letter {c}: {ls[0].reason} {ls[0].message}"
        for c, ls in by_coordinate.items()
        if c not in expected
    ]
    for coordinate, s in expected.items():
        found = by_coordinate.get(coordinate, [])
        if len(found) != 1:
            problems.append(f"{s.message.label}: {len(found)} dead letters at {coordinate}")
            continue
        letter, message = found[0], s.message
        if letter.reason != message.reason:
            problems.append(f"{message.label}: reason {letter.reason} ({letter.message})")
        if letter.original_value() != (message.value or b""):
            problems.append(f"{message.label}: value_b64 is not the original bytes")
        if message.value is None and letter.value_b64 != "":
            problems.append(f"{message.label}: tombstone has value_b64 {letter.value_b64!r}")
        if letter.original_key() != message.key:
            problems.append(f"{message.label}: key {letter.original_key()!r} != {message.key!r}")
        if not letter.message:
            problems.append(f"{message.label}: dead letter says nothing about what was wrong")
    assert not problems, "\n".join(problems)
    return Counter(letter.reason.value for letter in letters)


async def _check_accounting(settings: Settings, sent: Sequence[Sent]) -> None:
    """applied (one snapshot each) + duplicates + dead-lettered == consumed == produced."""
    valid = [s.message for s in sent if s.message.reason is None]
    unique = {_event_id(m) for m in valid}
    consumed = await _message_count(settings, INPUT_KINDS)
    applied = await _message_count(settings, ["scores"])
    dead = await _message_count(settings, ["deadletter"])
    duplicates = len(valid) - len(unique)
    assert consumed == len(sent)
    assert (applied, dead) == (len(unique), len(sent) - len(valid))
    assert applied + duplicates + dead == consumed


async def _check_state(settings: Settings, valid: Sequence[Message], absent: Sequence[str]) -> None:
    """Redis holds exactly the oracle's profiles of the valid events; ``absent`` have none."""
    expected = recompute_profiles(_parse_all(valid))
    actual = await read_profiles(settings, [*expected, *absent])
    wrong = [cid for cid in [*expected, *absent] if actual.get(cid) != expected.get(cid)]
    assert not wrong, "\n".join(f"{c}: {actual.get(c)} != {expected.get(c)}" for c in wrong[:5])


def _parse_all(messages: Sequence[Message]) -> list[Event]:
    parser = EventParser()
    now = datetime.now(UTC)
    return [parser.parse(m.value, m.kind, now) for m in messages]


def _event_id(message: Message) -> str:
    assert message.value is not None
    return str(orjson.loads(message.value)["event_id"])


# --- building inputs ---------------------------------------------------------------------------


def _event(event_type: str, customer: str, event_id: str, at: datetime, /, **changes: Any) -> bytes:
    """A valid event as wire bytes, with ``changes`` (dotted paths, ``__`` for ``.``) applied."""
    base: dict[str, Any] = {"event_id": event_id, "customer_id": customer, "event_time": at}
    if event_type == "ticket_resolved":
        base["payload.opened_at"] = at - timedelta(hours=5)
    base.update({path.replace("__", "."): value for path, value in changes.items()})
    return example_json(
        event_type, {k: v.isoformat() if isinstance(v, datetime) else v for k, v in base.items()}
    )


def _valid_stream(now: datetime) -> Iterator[Message]:
    """Endless valid events of the test customers, 3 h apart from 25 days ago on."""
    plan = [
        ("order_placed", "mal-a"), ("ticket_opened", "mal-b"), ("message_opened", "mal-c"),
        ("order_returned", "mal-a"), ("ticket_resolved", "mal-b"), ("message_clicked", "mal-c"),
        ("order_placed", "mal-b"), ("message_sent", "mal-a"), ("order_placed", "mal-c"),
        ("ticket_updated", "mal-a"), ("message_unsubscribed", "mal-b"), ("order_placed", "mal-old"),
    ]  # fmt: skip
    n = 0
    while True:
        for event_type, customer in plan:
            n += 1
            at = now - timedelta(days=25) + timedelta(hours=3 * n)
            kind = EVENT_TYPES[event_type]
            amount = {"payload__amount_minor": 1000 + n} if kind == "purchase" else {}
            value = _event(event_type, customer, f"ok-{n}", at, **amount)
            yield Message(f"valid {n}", kind, customer.encode(), value)


def _malformed(now: datetime) -> list[Message]:
    """One message per kind of malformation, most of them about customers with valid events.

    ``mal-ghost`` only ever sends malformed messages, so it must end up with no profile.
    """
    at = now - timedelta(days=5)
    naive = at.replace(tzinfo=None).isoformat()

    def order(customer: str = "mal-a", **changes: Any) -> bytes:
        return _event("order_placed", customer, f"bad-order-{customer}", at, **changes)

    def resolved(**changes: Any) -> bytes:
        return _event("ticket_resolved", "mal-b", "bad-ticket", at, **changes)

    def case(
        label: str,
        reason: R,
        value: bytes | None,
        kind: str = "purchase",
        key: bytes | None = b"mal-a",
    ) -> Message:
        return Message(label, kind, key, value, reason)

    valid_order = order()
    clicked = _event("message_clicked", "mal-c", "bad-message", at)
    huge = order(owner="x" * (64 * 1024))
    assert len(huge) > Settings().max_event_bytes
    ghost = b"mal-ghost"
    return [
        case("truncated JSON", R.NOT_JSON, valid_order[: len(valid_order) // 2]),
        case("binary garbage", R.NOT_JSON, bytes(range(255, -1, -1))),
        case("invalid UTF-8 in a string", R.NOT_JSON,
             valid_order.replace(b'"Ada Example"', b'"Ada \xc3\x28 Example"')),
        case("deeply nested", R.NOT_JSON, b"[" * 5000 + b"]" * 5000),
        case("empty bytes", R.EMPTY_MESSAGE, b""),
        case("tombstone", R.EMPTY_MESSAGE, None),
        case("only whitespace", R.EMPTY_MESSAGE, b" \r\n\t ", "service", b"mal-b"),
        case("JSON array", R.NOT_AN_OBJECT, b"[" + valid_order + b"]"),
        case("JSON string", R.NOT_AN_OBJECT, b'"order_placed"'),
        case("JSON null", R.NOT_AN_OBJECT, b"null", "marketing", b"mal-c"),
        case("oversized", R.TOO_LARGE, huge),
        case("unknown type", R.UNKNOWN_EVENT_TYPE, order(type="order_teleported")),
        case("missing type", R.UNKNOWN_EVENT_TYPE, order("mal-ghost", type=REMOVE), key=ghost),
        case("service type on purchase", R.WRONG_TOPIC, resolved(), key=b"mal-b"),
        case("marketing type on service", R.WRONG_TOPIC, clicked, "service", b"mal-c"),
        case("negative amount", R.NEGATIVE_AMOUNT, order(payload__amount_minor=-1)),
        case("negative unit price", R.NEGATIVE_AMOUNT,
             order(payload__items__0__unit_price_minor=-5)),
        case("currency XYZ", R.BAD_CURRENCY, order(payload__currency="XYZ")),
        case("lowercase currency", R.BAD_CURRENCY,
             order("mal-ghost", payload__currency="usd"), key=ghost),
        case("currency without a rate", R.UNSUPPORTED_CURRENCY, order(payload__currency="EUR")),
        case("naive timestamp", R.NAIVE_TIMESTAMP, order(event_time=naive)),
        case("naive opened_at", R.NAIVE_TIMESTAMP,
             resolved(payload__opened_at=naive), "service", b"mal-b"),
        case("event time +1 day", R.EVENT_TIME_IN_FUTURE,
             order("mal-ghost", event_time=now + timedelta(days=1)), key=ghost),
        case("missing customer_id", R.MISSING_CUSTOMER_ID, order(customer_id=REMOVE)),
        case("customer_id with a brace", R.BAD_CUSTOMER_ID, order(customer_id="mal-{a}")),
        case("customer_id with a space", R.BAD_CUSTOMER_ID, order(customer_id="mal a")),
        case("missing event_id", R.MISSING_EVENT_ID, order(event_id=REMOVE)),
        case("schema_version 2", R.UNSUPPORTED_SCHEMA_VERSION,
             order("mal-ghost", schema_version=2), key=ghost),
        case("satisfaction 6", R.SCHEMA_VIOLATION,
             resolved(payload__satisfaction=6), "service", b"mal-b"),
        case("quantity 0", R.SCHEMA_VIOLATION, order(payload__items__0__quantity=0)),
        case("amount as a string", R.SCHEMA_VIOLATION, order(payload__amount_minor="2599")),
        case("missing payload", R.SCHEMA_VIOLATION, order(payload=REMOVE)),
        case("key of another customer", R.KEY_MISMATCH, valid_order, key=b"mal-b"),
        case("key of a customer with no valid event", R.KEY_MISMATCH, valid_order, key=ghost),
        case("no key", R.KEY_MISMATCH, clicked, "marketing", None),
        case("amount_minor twice (the last one would win)", R.DUPLICATE_KEY,
             valid_order.replace(b'"amount_minor":', b'"amount_minor":100,"amount_minor":', 1)),
    ]  # fmt: skip


# --- tests -------------------------------------------------------------------------------------


async def test_each_malformed_kind_is_dead_lettered_and_valid_events_unaffected(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings
    now = datetime.now(UTC).replace(microsecond=0)
    valid = _valid_stream(now)
    malformed = _malformed(now)
    first: list[Message] = [next(valid) for _ in range(12)]
    for bad in malformed:  # each one between valid events of the same customers
        first += [bad, next(valid)]
    first += [next(valid) for _ in range(12)]
    first += [first[0], first[3]]  # redelivered by a producer: duplicates, not dead letters

    # Once the newer purchases are applied, a purchase 60 days older cannot be deduplicated;
    # a service event as old is applied, as the window is kept per kind.
    newest = max(
        e.event_time
        for e in _parse_all([m for m in first if m.reason is None])
        if e.customer_id == "mal-old" and e.kind == "purchase"
    )
    old = newest - timedelta(days=60)
    second = [
        Message(
            "purchase 60 days before the newest", "purchase", b"mal-old",
            _event("order_placed", "mal-old", "stale-order", old), R.BEYOND_DEDUP_WINDOW,
        ),
        Message(
            "service event as old", "service", b"mal-old",
            _event("ticket_opened", "mal-old", "old-ticket", old),
        ),
        Message(
            "purchase after the stale one", "purchase", b"mal-old",
            _event("order_placed", "mal-old", "after-stale", now - timedelta(hours=1)),
        ),
    ]  # fmt: skip

    sent = await _run_worker(settings, tmp_path / "worker.log", first, second)

    reasons = await _check_dead_letters(settings, sent)
    assert set(reasons) == {r.value for r in R}, "every reason code needs a case above"
    assert sum(reasons.values()) == len(malformed) + 1
    await _check_state(
        settings, [s.message for s in sent if s.message.reason is None], absent=["mal-ghost"]
    )
    await _check_accounting(settings, sent)


def _flood(now: datetime) -> tuple[list[Message], int]:
    """~3,000 simulated valid events interleaved with ~3,000 malformed messages of many kinds.

    Every fifth simulated malformation is replaced by one the simulator does not make
    (tombstone, wrong key, no key, wrong topic, future time), built from the latest valid event
    of that kind with a fresh event id, so applying it by mistake would change the state.
    """
    config = SimulationConfig.ending_at(
        now, days=20, customers=930, seed=5, malformed_fraction=1.0, duplicate_fraction=0.02
    )
    extra: list[tuple[str, R]] = [
        ("tombstone", R.EMPTY_MESSAGE), ("wrong key", R.KEY_MISMATCH),
        ("no key", R.KEY_MISMATCH), ("wrong topic", R.WRONG_TOPIC),
        ("future", R.EVENT_TIME_IN_FUTURE),
    ]  # fmt: skip
    other_topic = {"purchase": "marketing", "service": "purchase", "marketing": "service"}
    latest: dict[str, bytes] = {}
    out: list[Message] = []
    malformed = 0
    for n, m in enumerate(simulate(config)):
        if m.fault is None or m.fault == "duplicate":
            latest[m.kind] = m.value
            out.append(Message(f"sim {n}", m.kind, m.key, m.value))
            continue
        malformed += 1
        if malformed % 5 or m.kind not in latest:
            out.append(Message(m.fault, m.kind, m.key, m.value, R(MALFORMATION_REASONS[m.fault])))
            continue
        label, reason = extra[(malformed // 5) % len(extra)]
        event = orjson.loads(latest[m.kind])
        event["event_id"] = f"flood-{n}"
        if label == "future":
            event["event_time"] = (now + timedelta(days=1)).isoformat()
        key: bytes | None = {"wrong key": b"someone-else", "no key": None}.get(label, m.key)
        value = None if label == "tombstone" else orjson.dumps(event)
        kind = other_topic[m.kind] if label == "wrong topic" else m.kind
        out.append(Message(label, kind, key, value, reason))
    return out, malformed


async def test_poison_flood_is_dead_lettered_and_the_worker_keeps_up(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings
    messages, malformed = _flood(datetime.now(UTC))
    assert 2_500 <= malformed <= 3_500

    sent = await _run_worker(settings, tmp_path / "worker.log", messages)

    reasons = await _check_dead_letters(settings, sent)
    assert reasons == Counter(m.reason.value for m in messages if m.reason is not None)
    valid = [m for m in messages if m.reason is None]
    await _check_state(settings, valid, absent=[])
    await _check_accounting(settings, sent)


# --- regressions: bugs this file found, fixed; each stays as a test ----------------------------


async def test_input_near_the_broker_limit_does_not_crash_the_worker(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    big = _event("order_placed", "big-1", "big", at, owner="x" * 800_000)
    messages = [
        Message("before", "purchase", b"big-1", _event("order_placed", "big-1", "before", at)),
        Message("800 KB", "purchase", b"big-1", big, R.TOO_LARGE),
        Message("after", "purchase", b"big-1", _event("order_placed", "big-1", "after", at)),
    ]
    sent = await _run_worker(isolated_settings, tmp_path / "worker.log", messages)
    letters = await _dead_letters(isolated_settings)
    assert [(x.reason, x.offset) for x in letters] == [(R.TOO_LARGE, sent[1].offset)]
    await _check_state(isolated_settings, [messages[0], messages[2]], absent=[])


async def test_an_event_before_1970_does_not_block_later_events(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    later = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    ancient = _event("order_placed", "old-1", "e-1969", datetime(1969, 12, 31, 23, tzinfo=UTC))
    current = _event("order_placed", "old-1", "e-now", later)
    await _run_worker(
        isolated_settings,
        tmp_path / "worker.log",
        [Message("1969", "purchase", b"old-1", ancient)],
        [Message("now", "purchase", b"old-1", current)],
    )
    profile = (await read_profiles(isolated_settings, ["old-1"])).get("old-1")
    assert profile is not None and profile.last_purchase_at == int(later.timestamp())


async def test_huge_amounts_are_rejected_or_summed_exactly(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    huge = {"rich-1": 2**63, "rich-2": 2**53 + 1}
    messages = [
        Message(f"{cid} {name}", "purchase", cid.encode(), _event(
            "order_placed", cid, f"{cid}-{name}", at, payload__items=[],
            payload__amount_minor=amount,
        ))
        for cid, big in huge.items()
        for name, amount in (("normal", 2599), ("huge", big))
    ]  # fmt: skip
    await _run_worker(isolated_settings, tmp_path / "worker.log", messages)
    profiles = await read_profiles(isolated_settings, huge)
    for cid, big in huge.items():
        gross = profiles[cid].gross_minor if cid in profiles else None
        assert gross in (2599, 2599 + big), f"{cid}: gross_minor {gross}"


async def test_schema_version_true_is_unsupported(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    messages = [
        Message("valid", "purchase", b"v-1", _event("order_placed", "v-1", "ok", at)),
        Message(
            "schema_version true", "purchase", b"v-1",
            _event("order_placed", "v-1", "bool", at, schema_version=True),
            R.UNSUPPORTED_SCHEMA_VERSION,
        ),
    ]  # fmt: skip
    sent = await _run_worker(isolated_settings, tmp_path / "worker.log", messages)
    await _check_dead_letters(isolated_settings, sent)
    await _check_state(isolated_settings, messages[:1], absent=[])
