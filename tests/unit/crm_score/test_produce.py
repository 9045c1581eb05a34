"""Event files (JSONL, CSV), the token-bucket rate limiter and the producer loop, without Kafka."""

from __future__ import annotations

import asyncio
import csv
import doctest
import re
import socket
import time
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer

import crm_score.event_files as event_files_module
import crm_score.produce as produce_module
from crm_core.settings import Settings
from crm_score.cli import app
from crm_score.event_files import (
    EventFileError,
    FileMessage,
    kind_for_type,
    read_event_file,
    write_csv,
    write_jsonl,
)
from crm_score.produce import (
    ProduceError,
    ProducerLike,
    TokenBucket,
    produce_messages,
)
from crm_score.simulate import MALFORMATIONS, SimulatedMessage, SimulationConfig, simulate
from schemas import EventParser, PurchaseEvent

CONFIG = SimulationConfig(customers=80, days=60, seed=9)


@pytest.fixture(scope="module")
def clean() -> list[SimulatedMessage]:
    return list(simulate(CONFIG))


@pytest.fixture(scope="module")
def with_faults() -> list[SimulatedMessage]:
    config = SimulationConfig(
        customers=80, days=60, seed=9, malformed_fraction=0.05, duplicate_fraction=0.02
    )
    return list(simulate(config))


# --- kinds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("order_placed", "purchase"),
        ("order_returned", "purchase"),
        ("ticket_resolved", "service"),
        ("message_converted", "marketing"),
        ("refund", None),
        ("", None),
        (None, None),
        (17, None),
    ],
)
def test_kind_for_type(event_type: object, kind: str | None) -> None:
    assert kind_for_type(event_type) == kind


# --- JSONL ------------------------------------------------------------------------------------


def test_jsonl_round_trip_keeps_bytes_and_routes_bad_lines_to_the_fallback(
    with_faults: list[SimulatedMessage], tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    assert write_jsonl(with_faults, path) == len(with_faults)
    read = list(read_event_file(path, fallback_kind="service"))
    assert [m.value for m in read] == [m.value for m in with_faults]
    assert [m.line for m in read] == list(range(1, len(read) + 1))
    for original, again in zip(with_faults, read, strict=True):
        if original.fault not in MALFORMATIONS:
            assert (again.kind, again.key) == (original.kind, original.key)
        elif original.fault in ("truncated_json", "garbage_bytes", "not_an_object"):
            assert (again.kind, again.key) == ("service", None)


def test_jsonl_without_fallback_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"type": "order_placed", "customer_id": "c1"}\n{"type": "nope"\n')
    messages = read_event_file(path)
    assert next(messages).kind == "purchase"
    with pytest.raises(EventFileError, match=r"events\.jsonl:2"):
        next(messages)


def test_jsonl_skips_blank_lines_and_strips_crlf(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b'{"type":"message_sent","customer_id":"c1"}\r\n\r\n  \n\xff\xfe\n')
    read = list(read_event_file(path, fallback_kind="marketing"))
    assert read == [
        FileMessage("marketing", b"c1", b'{"type":"message_sent","customer_id":"c1"}', 1),
        FileMessage("marketing", None, b"\xff\xfe", 4),
    ]


def test_write_jsonl_refuses_line_breaks(tmp_path: Path) -> None:
    message = FileMessage("purchase", None, b"{}\n{}", 1)
    with pytest.raises(EventFileError, match="line break"):
        write_jsonl([message], tmp_path / "x.jsonl")


# --- CSV --------------------------------------------------------------------------------------


def test_csv_round_trip_gives_equal_events(clean: list[SimulatedMessage], tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    assert write_csv(clean, path) == len(clean)
    read = list(read_event_file(path))
    assert len(read) == len(clean)
    for original, again in zip(clean, read, strict=True):
        assert orjson.loads(again.value) == orjson.loads(original.value)
        assert (again.kind, again.key) == (original.kind, original.key)


def test_csv_with_dotted_payload_columns(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["schema_version", "event_id", "customer_id", "event_time", "source", "type",
             "payload.order_id", "payload.amount_minor", "payload.currency", "payload.items",
             "contact.phone", "department"]
        )  # fmt: skip
        writer.writerow(
            ["1", "e-1", "c-1", "2026-01-05T10:00:00+00:00", "shop", "order_placed", "o-1",
             "2599", "USD", '[{"sku":"s","category":"ink","quantity":1,"unit_price_minor":2599}]',
             "0123", ""]
        )  # fmt: skip
        writer.writerow(
            ["1", "e-2", "c-1", "2026-01-05T11:00:00+00:00", "shop", "order_returned",
             '"0042"', "0", "USD", "", "", "sales/emea"]
        )  # fmt: skip
    first, second = read_event_file(path)
    event = orjson.loads(first.value)
    assert event["payload"]["amount_minor"] == 2599
    assert event["contact"] == {"phone": "0123"}
    assert "department" not in event
    assert orjson.loads(second.value)["payload"] == {
        "order_id": "0042",
        "amount_minor": 0,
        "currency": "USD",
    }
    parser = EventParser()
    now = CONFIG.end
    placed = parser.parse(first.value, first.kind, now)
    assert isinstance(placed, PurchaseEvent)
    assert placed.payload.items[0].quantity == 1
    assert parser.parse(second.value, second.kind, now).department == "sales/emea"


def test_write_csv_refuses_what_it_cannot_represent(
    with_faults: list[SimulatedMessage], tmp_path: Path
) -> None:
    garbage = next(m for m in with_faults if m.fault == "garbage_bytes")
    with pytest.raises(EventFileError, match="JSONL"):
        write_csv([garbage], tmp_path / "bad.csv")
    extra = FileMessage("purchase", None, b'{"type":"order_placed","note":"x"}', 1)
    with pytest.raises(EventFileError, match="JSONL"):
        write_csv([extra], tmp_path / "bad.csv")


def test_unknown_suffix_and_kind_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(EventFileError, match="unknown file type"):
        read_event_file(tmp_path / "events.parquet")
    with pytest.raises(EventFileError, match="fallback kind"):
        read_event_file(tmp_path / "events.jsonl", fallback_kind="alerts")


# --- rate limiting ----------------------------------------------------------------------------


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_holds_the_long_run_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=250.0, burst=10.0, clock=clock)
    for _ in range(1000):
        clock.now += bucket.reserve(1)  # a sender that waits exactly as long as told
    assert clock.now - 100.0 == pytest.approx((1000 - 10) / 250.0)


def test_bucket_allows_a_burst_after_idling_but_no_more() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=5.0, clock=clock)
    assert [bucket.reserve() for _ in range(5)] == [0.0] * 5
    assert bucket.reserve() == pytest.approx(0.1)
    clock.now += 3600.0  # a long pause refills to the burst, not to 36,000 tokens
    assert [bucket.reserve() for _ in range(5)] == [0.0] * 5
    assert bucket.reserve(2) == pytest.approx(0.2)


def test_bucket_waits_scale_with_requested_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100.0, burst=1.0, clock=clock)
    assert bucket.reserve(1) == 0.0
    assert bucket.reserve(50) == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.reserve(1) == pytest.approx(0.01)
    assert TokenBucket(rate=1000.0).burst == 100.0


@pytest.mark.parametrize("rate", [0.0, -5.0])
def test_bucket_needs_a_positive_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate=rate)


# --- the producer loop (a fake client; the real broker is tested in integration) -------------


class FakeProducer:
    """Records what it is asked to send; fails deliveries whose value is in ``fail``."""

    def __init__(self, fail: frozenset[bytes] = frozenset()) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.started = self.stopped = False
        self.fail = fail

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> Awaitable[Any]:
        self.sent.append((topic, key, value))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if value in self.fail:
            future.set_exception(RuntimeError("broker said no"))
        else:
            future.set_result(None)
        return future


def _factory(producer: FakeProducer) -> Any:
    def make(settings: Settings) -> ProducerLike:
        return producer

    return make


async def test_produce_sends_each_message_to_its_topic(clean: list[SimulatedMessage]) -> None:
    settings = Settings(topic_prefix="test.")
    fake = FakeProducer()
    report = await produce_messages(
        settings, clean, chunk_size=100, progress=True, producer_factory=_factory(fake)
    )
    assert fake.started
    assert fake.stopped
    assert fake.sent == [(f"test.{m.kind}", m.key, m.value) for m in clean]
    expected = {f"test.{k}": sum(m.kind == k for m in clean) for k in ("purchase", "service")}
    assert {t: report.counts[t] for t in expected} == expected
    assert report.total == len(clean)
    assert report.elapsed_seconds > 0


async def test_produce_surfaces_delivery_errors(clean: list[SimulatedMessage]) -> None:
    fake = FakeProducer(fail=frozenset({clean[150].value}))
    with pytest.raises(ProduceError, match="1 of 100 messages were not delivered") as failed:
        await produce_messages(
            Settings(), iter(clean), chunk_size=100, producer_factory=_factory(fake)
        )
    assert failed.value.report.total == 199  # the two chunks settled, minus the failure
    assert fake.stopped


async def test_produce_rejects_an_unknown_kind() -> None:
    fake = FakeProducer()
    message = FileMessage("alerts", b"c1", b"{}", 1)
    with pytest.raises(ProduceError, match="kind 'alerts'"):
        await produce_messages(Settings(), [message], producer_factory=_factory(fake))
    assert fake.sent == []


async def test_produce_respects_the_rate(clean: list[SimulatedMessage]) -> None:
    messages = clean[:300]
    started = time.perf_counter()
    report = await produce_messages(
        Settings(), messages, rate=1000.0, producer_factory=_factory(FakeProducer())
    )
    elapsed = time.perf_counter() - started
    burst = 1000.0 / 10.0
    assert elapsed >= (len(messages) - burst - 10) / 1000.0  # 10 = tokens taken per step
    assert report.total == len(messages)


def test_default_producer_is_idempotent_and_acks_all(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka

    captured: dict[str, Any] = {}

    def fake_producer(**options: Any) -> object:
        captured.update(options)
        return object()

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", fake_producer)
    produce_module.kafka_producer(Settings(kafka_bootstrap="broker:9092"))
    assert captured["bootstrap_servers"] == "broker:9092"
    assert captured["acks"] == "all"
    assert captured["enable_idempotence"] is True
    assert captured["security_protocol"] == "PLAINTEXT"
    assert 0 < captured["linger_ms"] <= 10


def test_jsonl_file_messages_parse_like_the_originals(
    clean: list[SimulatedMessage], tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    write_jsonl(clean, path)
    parser = EventParser()
    now = CONFIG.end + timedelta(days=1)
    for message in read_event_file(path):
        assert message.key is not None
        assert parser.parse(message.value, message.kind, now).customer_id == message.key.decode()


async def test_unreachable_broker_is_reported_and_the_client_closed(
    clean: list[SimulatedMessage],
) -> None:
    with socket.socket() as closed_port:  # bound but not listening: connections are refused
        closed_port.bind(("127.0.0.1", 0))
        port = closed_port.getsockname()[1]
        settings = Settings(kafka_bootstrap=f"127.0.0.1:{port}")
        with pytest.raises(ProduceError, match="cannot reach Kafka") as failed:
            await produce_messages(settings, clean[:10])
    assert failed.value.report.total == 0


def test_docstring_examples_run() -> None:
    assert doctest.testmod(produce_module).failed == 0
    assert doctest.testmod(event_files_module).failed == 0


def test_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(produce_module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == produce_module.__name__
    }
    assert public == set(produce_module.__all__)
    public_files = {
        name
        for name, value in vars(event_files_module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == event_files_module.__name__
    }
    assert public_files == set(event_files_module.__all__) - {"CSV_COLUMNS"}


def test_an_unknown_type_names_an_option_that_exists(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"type": "nope", "customer_id": "c1"}\n')
    with pytest.raises(EventFileError) as caught:
        list(read_event_file(path))
    options = re.findall(r"crm-score (\w+) (--[a-z-]+)", str(caught.value))
    assert options
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    for command, option in options:
        params = group.commands[command].params
        assert option in {name for param in params for name in param.opts}
