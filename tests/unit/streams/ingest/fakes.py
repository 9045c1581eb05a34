"""Stand-ins for Redis and Kafka in the ingest unit tests: recorders of what a round asks of
them, in the order it asks (``journal``), failing when told to. The recovery bookkeeping inside
:class:`FakeStore` is the real one: it only builds commands.

:class:`FakeProducer` stands for aiokafka's producer: it keeps what was sent per topic and
partition in record batches of at most ``batch_size`` records; each delivery is acknowledged at
once unless the topic is in ``refuse`` (its delivery fails, as a broker's refusal does)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from crm_core.errors import StateStoreError
from streams.round.messages import OutputMessage
from streams.round.scorer import ScoredRound
from streams.state.due_index import DueIndex
from streams.state.recovery import RoundRecovery

Journal = list[str]


class FakeStore:
    """Records what the checkpoint asks of Redis; ``refusals`` saves fail first."""

    def __init__(self, journal: Journal, fresh: list[bool], refusals: int = 0) -> None:
        self.recovery = RoundRecovery("t", DueIndex(aioredis.Redis(), "t"))  # never connects
        self._journal = journal
        self._fresh = fresh
        self.refusals = refusals
        self.saved: list[Mapping[int, float]] = []
        self.recent: list[tuple[str, str, bytes]] = []

    async def save(
        self, scored: ScoredRound, watermarks: Mapping[int, float], *_: Any
    ) -> list[bool]:
        self._journal.append("save")
        if self.refusals:
            self.refusals -= 1
            raise StateStoreError("OOM command not allowed when used memory > 'maxmemory'.")
        self.saved.append(watermarks)
        return self._fresh

    async def record_alerts(self, alerts: Sequence[tuple[str, str, bytes]]) -> None:
        self._journal.append("record_alerts")
        self.recent += alerts


class FakeOutputs:
    """Records each publish; every delivery is acknowledged at once, unless ``refuse`` names
    the topic Kafka refuses (the send raises, as aiokafka's does when it times out)."""

    def __init__(self, journal: Journal, refuse: str | None = None) -> None:
        self._journal = journal
        self._refuse = refuse
        self.sent: dict[str, list[OutputMessage]] = {}
        self.deliveries: list[asyncio.Future[Any]] = []

    async def publish(
        self, name: str, messages: Iterable[OutputMessage]
    ) -> list[asyncio.Future[Any]]:
        self._journal.append(f"publish {name}")
        if name == self._refuse:
            raise KafkaTimeoutError()
        self.sent[name] = list(messages)
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        self.deliveries.append(delivery)
        return [delivery]

    async def publish_dead_letters(
        self, messages: Iterable[OutputMessage]
    ) -> list[asyncio.Future[Any]]:
        return await self.publish("deadletter", messages)


class FakeCommits:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self.added: list[tuple[list[asyncio.Future[Any]], dict[TopicPartition, int]]] = []

    async def add(
        self, deliveries: list[asyncio.Future[Any]], commits: dict[TopicPartition, int], *_: Any
    ) -> None:
        self._journal.append("commit")
        self.added.append((deliveries, commits))


class FakeBatch:
    """A record batch that holds ``size`` records."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: int | None) -> object:
        """Metadata of the appended record, or None when the batch is full (as aiokafka's)."""
        if len(self.records) >= self.size:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class FakeProducer:
    """Records every batch sent as ``(topic, partition, records)``."""

    def __init__(self, batch_size: int = 100, refuse: frozenset[str] = frozenset()) -> None:
        self.batch_size = batch_size
        self.refuse = refuse
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.batch_size)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, list(batch.records)))
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if topic in self.refuse:
            delivery.set_exception(KafkaTimeoutError())
        else:
            delivery.set_result(None)
        return delivery

    def values(self, topic: str) -> list[bytes | None]:
        """The values sent to ``topic``, in order."""
        return [v for t, _, records in self.sent if t == topic for _, v in records]
