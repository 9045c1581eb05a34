"""Send events to the input topics, and read/write event files (JSONL, CSV).

Every input message goes to ``settings.topic(kind)`` keyed by its UTF-8 customer id. The kind
follows from the event type (:func:`kind_for_type`). Files can carry invalid lines on purpose:
those are sent unchanged to the topic of a fallback kind, so the worker dead-letters them.

Examples
--------
>>> kind_for_type("order_returned"), kind_for_type("message_opened"), kind_for_type("nope")
('purchase', 'marketing', None)
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from tqdm import tqdm

from crm_score.errors import CrmScoringError
from crm_score.settings import INPUT_KINDS, Settings

__all__ = [
    "CSV_COLUMNS",
    "EventFileError",
    "FileMessage",
    "ProduceError",
    "ProduceReport",
    "ProducerLike",
    "ProducibleMessage",
    "TokenBucket",
    "kafka_producer",
    "kind_for_type",
    "produce_messages",
    "read_event_file",
    "write_csv",
    "write_jsonl",
]

_TYPE_PREFIXES = (("order_", "purchase"), ("ticket_", "service"), ("message_", "marketing"))
_ENVELOPE_STRINGS = ("event_id", "customer_id", "event_time", "source", "department", "owner")
#: Columns :func:`write_csv` writes; ``contact`` and ``payload`` hold JSON objects.
CSV_COLUMNS: tuple[str, ...] = ("schema_version", *_ENVELOPE_STRINGS, "type", "contact", "payload")


class EventFileError(CrmScoringError):
    """An event file cannot be read or written as asked (the message says which line and why)."""


class ProduceError(CrmScoringError):
    """Messages could not be delivered; ``report`` counts what was delivered before that."""

    def __init__(self, message: str, report: ProduceReport) -> None:
        super().__init__(message)
        self.report = report


class ProducibleMessage(Protocol):
    """Anything with a kind, key and value, e.g. ``simulate.SimulatedMessage`` or FileMessage."""

    @property
    def kind(self) -> str: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class FileMessage:
    """One message read from an event file; ``line`` is its 1-based line (JSONL) or row (CSV)."""

    kind: str
    key: bytes | None
    value: bytes
    line: int


@dataclass(frozen=True, slots=True)
class ProduceReport:
    """Messages delivered per topic and the wall-clock seconds the run took."""

    counts: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    @property
    def total(self) -> int:
        """Messages delivered over all topics."""
        return sum(self.counts.values())

    @property
    def rate(self) -> float:
        """Delivered messages per second."""
        return self.total / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


def kind_for_type(event_type: object) -> str | None:
    """``purchase`` for ``order_*``, ``service`` for ``ticket_*``, ``marketing`` for
    ``message_*``; ``None`` for anything else."""
    if isinstance(event_type, str):
        for prefix, kind in _TYPE_PREFIXES:
            if event_type.startswith(prefix):
                return kind
    return None


# --- files ---------------------------------------------------------------------------------


def _classify(event: object, fallback: str | None, where: str) -> tuple[str, bytes | None]:
    kind = kind_for_type(event.get("type")) if isinstance(event, dict) else None
    customer = event.get("customer_id") if isinstance(event, dict) else None
    key = customer.encode() if isinstance(customer, str) else None
    if kind is None:
        if fallback is None:
            raise EventFileError(
                f"{where}: no known event type (order_*, ticket_*, message_*), so its topic is "
                "unknown; pass a fallback kind (--kind) to send such lines for dead-lettering"
            )
        kind = fallback
    return kind, key


def _read_jsonl(path: Path, fallback: str | None) -> Iterator[FileMessage]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                event: object = orjson.loads(line)
            except orjson.JSONDecodeError:
                event = None
            kind, key = _classify(event, fallback, f"{path}:{number}")
            yield FileMessage(kind, key, line, number)


def _json_cell(cell: str) -> object:
    try:
        return orjson.loads(cell)
    except orjson.JSONDecodeError:
        return cell


def _csv_event(row: dict[str | None, str | list[str] | None]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or not isinstance(cell, str) or cell == "":
            continue
        if column == "schema_version":
            event[column] = int(cell) if cell.strip().isdigit() else cell
        elif column in _ENVELOPE_STRINGS or column == "type":
            event[column] = cell
        elif "." in column:
            head, name = column.split(".", 1)
            nested = event.setdefault(head, {})
            if isinstance(nested, dict):
                nested[name] = cell if head == "contact" else _json_cell(cell)
        else:
            event[column] = _json_cell(cell)
    return event


def _read_csv(path: Path, fallback: str | None) -> Iterator[FileMessage]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for number, row in enumerate(csv.DictReader(fh), start=1):
            event = _csv_event(row)
            kind, key = _classify(event, fallback, f"{path}: row {number}")
            yield FileMessage(kind, key, orjson.dumps(event), number)


def read_event_file(path: Path, *, fallback_kind: str | None = None) -> Iterator[FileMessage]:
    """Messages from a ``.jsonl``/``.ndjson``/``.json`` (one event per line) or ``.csv`` file.

    JSONL lines are sent verbatim. A line that is not JSON, or has no ``order_*``/``ticket_*``/
    ``message_*`` type, goes to the topic of ``fallback_kind`` (so the worker dead-letters it);
    without a fallback such a line raises :class:`EventFileError`. Blank lines are skipped.

    CSV has one event per row with the envelope columns (:data:`CSV_COLUMNS`); the payload is
    either a ``payload`` column holding a JSON object or ``payload.<field>`` columns, and the
    same for ``contact``. Empty cells are left out. ``payload.<field>`` and unknown cells are
    decoded as JSON when they are valid JSON, else kept as strings: quote a string that looks
    like a number (``"123"``). Each row is re-encoded as one JSON object.
    """
    if fallback_kind is not None and fallback_kind not in INPUT_KINDS:
        raise EventFileError(f"fallback kind {fallback_kind!r} is not one of {INPUT_KINDS}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path, fallback_kind)
    if suffix == ".csv":
        return _read_csv(path, fallback_kind)
    raise EventFileError(f"{path}: unknown file type {suffix!r}; use .jsonl, .ndjson or .csv")


def write_jsonl(messages: Iterable[ProducibleMessage], path: Path) -> int:
    """Write each message's value as one line; returns the number written.

    Only values are written: :func:`read_event_file` recovers kind and key from each event
    (non-JSON values then need a fallback kind).
    """
    count = 0
    with path.open("wb") as fh:
        for message in messages:
            if b"\n" in message.value or b"\r" in message.value:
                raise EventFileError(f"message {count + 1} contains a line break; not JSONL-safe")
            fh.write(message.value + b"\n")
            count += 1
    return count


def write_csv(messages: Iterable[ProducibleMessage], path: Path) -> int:
    """Write valid events as CSV rows with :data:`CSV_COLUMNS`; returns the number written.

    Raises :class:`EventFileError` for a value that is not a JSON object or has a field the CSV
    layout has no column for (write those with :func:`write_jsonl` instead).
    """
    count = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for message in messages:
            try:
                event = orjson.loads(message.value)
            except orjson.JSONDecodeError:
                event = None
            if not isinstance(event, dict) or set(event) - set(CSV_COLUMNS):
                raise EventFileError(
                    f"message {count + 1} is not an event object with only the columns "
                    f"{CSV_COLUMNS}; write it as JSONL instead"
                )
            writer.writerow([_csv_cell(event.get(column)) for column in CSV_COLUMNS])
            count += 1
    return count


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


# --- producing ------------------------------------------------------------------------------


class TokenBucket:
    """Rate limiter: ``rate`` tokens per second, at most ``burst`` saved up.

    :meth:`reserve` always grants the tokens and says how long to wait before using them, so
    callers that wait that long never exceed ``rate`` on average. The clock is injectable.

    Examples
    --------
    >>> now = [0.0]
    >>> bucket = TokenBucket(rate=10.0, burst=5.0, clock=lambda: now[0])
    >>> bucket.reserve(5), bucket.reserve(5), bucket.reserve(1)
    (0.0, 0.5, 0.6)
    >>> now[0] = 10.0
    >>> bucket.reserve(1)
    0.0
    """

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate={rate}; use a positive number of events per second")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate / 10.0)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    def reserve(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` now; return the seconds to wait before using them (0.0 if none)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= tokens
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self, tokens: float = 1.0) -> None:
        """Reserve ``tokens`` and sleep until they may be used."""
        wait = self.reserve(tokens)
        if wait > 0:
            await asyncio.sleep(wait)


class ProducerLike(Protocol):
    """The part of ``aiokafka.AIOKafkaProducer`` that :func:`produce_messages` uses."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> Awaitable[Any]: ...


def kafka_producer(settings: Settings) -> ProducerLike:
    """An idempotent ``AIOKafkaProducer`` (acks=all, linger 5 ms) for ``settings``."""
    from aiokafka import AIOKafkaProducer

    producer: ProducerLike = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        linger_ms=5,
        acks="all",
        enable_idempotence=True,
        max_batch_size=256 * 1024,
        **settings.kafka_client_options(),
    )
    return producer


class _Deliveries:
    """Counts settled deliveries per topic; raises :class:`ProduceError` on the first failure."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.started = time.perf_counter()

    def report(self) -> ProduceReport:
        return ProduceReport(dict(self.counts), time.perf_counter() - self.started)

    def error(self, message: str) -> ProduceError:
        return ProduceError(message, self.report())

    async def settle(self, pending: list[tuple[str, Awaitable[Any]]]) -> None:
        results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        for (topic, _), result in zip(pending, results, strict=True):
            if not isinstance(result, BaseException):
                self.counts[topic] += 1
        if failed:
            raise self.error(
                f"{len(failed)} of {len(pending)} messages were not delivered (first error: "
                f"{failed[0]!r}); check that the broker is up and the topics exist, then send "
                "again (re-sent events are skipped by event_id)"
            ) from failed[0]


async def produce_messages(
    settings: Settings,
    messages: Iterable[ProducibleMessage],
    *,
    rate: float | None = None,
    progress: bool = False,
    chunk_size: int = 5000,
    producer_factory: Callable[[Settings], ProducerLike] = kafka_producer,
) -> ProduceReport:
    """Send ``messages`` to ``settings.topic(message.kind)`` keyed by ``message.key``.

    Sends without waiting for each delivery; delivery results are awaited one chunk
    (``chunk_size`` messages) behind, so a failure raises :class:`ProduceError` soon after it
    happens (as does a broker that cannot be reached). ``rate`` caps the send rate in messages
    per second (token bucket; ``None`` = as fast as possible). ``progress`` shows a tqdm bar on
    stderr. Kafka record timestamps are left to the producer (send time): event time lives in
    the event, and year-old timestamps would fall under the broker's time-based retention.
    ``producer_factory`` is the seam for another client (tests pass a fake); the default is
    :func:`kafka_producer`.
    """
    topics = {kind: settings.topic(kind) for kind in INPUT_KINDS}
    bucket = TokenBucket(rate) if rate is not None else None
    step = max(1, int(rate / 100.0)) if rate is not None else 0  # ~10 ms of tokens at a time
    total = len(messages) if isinstance(messages, Sized) else None
    deliveries = _Deliveries()
    producer = producer_factory(settings)
    try:
        try:
            await producer.start()
        except Exception as exc:
            raise deliveries.error(
                f"cannot reach Kafka at {settings.kafka_bootstrap} ({exc!r}); start it "
                "(crm-score services up) or set CRM_KAFKA_BOOTSTRAP"
            ) from exc
        with tqdm(total=total, unit="msg", disable=not progress, mininterval=0.5) as bar:
            previous: list[tuple[str, Awaitable[Any]]] = []
            current: list[tuple[str, Awaitable[Any]]] = []
            for number, message in enumerate(messages, start=1):
                if bucket is not None and (number - 1) % step == 0:
                    await bucket.acquire(step)
                topic = topics.get(message.kind)
                if topic is None:
                    raise deliveries.error(
                        f"message {number} has kind {message.kind!r}; use one of {INPUT_KINDS}"
                    )
                try:
                    future = await producer.send(topic, value=message.value, key=message.key)
                except Exception as exc:
                    raise deliveries.error(
                        f"message {number} could not be queued for {topic}: {exc!r}"
                    ) from exc
                current.append((topic, future))
                if len(current) >= chunk_size:
                    await deliveries.settle(previous)
                    bar.update(len(previous))
                    previous, current = current, []
            for chunk in (previous, current):
                await deliveries.settle(chunk)
                bar.update(len(chunk))
    finally:
        await producer.stop()
    return deliveries.report()
