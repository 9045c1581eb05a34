"""A stand-in for aiokafka's producer in unit tests: it keeps what was sent, per topic and
partition, in record batches of at most ``batch_size`` records; each delivery is acknowledged
at once unless the topic is in ``refuse`` (its delivery fails, as a broker's refusal does)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError


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
