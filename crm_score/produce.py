"""Send events to the input topics: one idempotent producer, optional rate limit, progress.

Every input message goes to ``settings.topic(kind)`` keyed by its UTF-8 customer id (see
:mod:`crm_score.event_files` for reading events from files).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sized
from dataclasses import dataclass, field
from typing import Any, Protocol

from tqdm import tqdm

from crm_core.errors import CrmScoringError
from crm_core.settings import INPUT_KINDS, Settings
from crm_score.event_files import ProducibleMessage

__all__ = [
    "ProduceError",
    "ProduceReport",
    "ProducerLike",
    "TokenBucket",
    "kafka_producer",
    "produce_messages",
]


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


class ProduceError(CrmScoringError):
    """Messages could not be delivered; ``report`` counts what was delivered before that."""

    def __init__(self, message: str, report: ProduceReport) -> None:
        super().__init__(message)
        self.report = report


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
