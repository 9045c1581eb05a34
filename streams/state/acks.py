"""Outputs sent to Kafka whose deliveries are not all acknowledged yet.

Both outboxes (:mod:`streams.state.outbox`, :mod:`streams.state.recovery`) delete an entry only once
Kafka acknowledged every message built from it; this is their shared bookkeeping (pure: it only
looks at the delivery futures).
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

__all__ = ["AwaitingAcks"]

T = TypeVar("T")


class AwaitingAcks(Generic[T]):
    """Items sent to Kafka, each waiting for its deliveries to be acknowledged.

    :meth:`acknowledged` takes the items whose deliveries are all done and succeeded (an item
    with a failed delivery is taken too, and returned never: its outbox entry stays for the
    partition's next owner); they are forgotten only once :meth:`confirmed` says the commands
    built from them ran, so a save that failed confirms them again.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[list[asyncio.Future[Any]], T]] = []
        self._taken: set[int] = set()

    def add(self, deliveries: list[asyncio.Future[Any]], item: T) -> None:
        self._waiting.append((deliveries, item))

    def acknowledged(self) -> list[T]:
        self._taken = set()
        items = []
        for entry in self._waiting:
            deliveries, item = entry
            if not all(f.done() for f in deliveries):
                continue
            self._taken.add(id(entry))
            if not any(f.cancelled() or f.exception() is not None for f in deliveries):
                items.append(item)
        return items

    def confirmed(self) -> None:
        self._waiting = [e for e in self._waiting if id(e) not in self._taken]
        self._taken = set()
