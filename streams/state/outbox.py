"""At-least-once for a round's score snapshots and training examples across a worker's death.

A round saves its state before it publishes; once saved, its events are applied and walked, so
a worker killed before Kafka acknowledged the round's outputs would never produce them again
(the redelivered events are duplicates). The save therefore also writes the round's snapshots
and examples, one field per round and partition, to ``{prefix}:{due:<p>}:outs``; the field is
deleted by a later save once Kafka acknowledged every one of them. When a partition is
assigned, whatever is left there is published again (consumers see a repeat, never a gap:
snapshots carry customer, time, trigger and event id to drop repeats by).

A field is ``<worker token>:<round number>``; a save retried after a failure writes the same
field again, so a retry leaves nothing behind. The value is the round's messages on that
partition, each as topic code (``s`` scores, ``t`` training), key length, key, value length,
value (lengths as 4-byte big-endian).
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Sequence
from typing import Any

from streams.round.messages import OutputMessage
from streams.state.acks import AwaitingAcks
from streams.state.due_index import DueIndex
from streams.state.resp import Command

__all__ = ["Command", "OutputOutbox"]

_TOPICS = {b"s": "scores", b"t": "training"}
_LENGTH = struct.Struct(">I")


class OutputOutbox:
    """The outbox of one worker's score snapshots and training examples (see module doc)."""

    def __init__(self, due: DueIndex) -> None:
        self._due = due
        self._token = uuid.uuid4().hex[:12]
        self._round = 0
        self._written: list[tuple[int, str]] = []  # by the save being built or just run
        self._unconfirmed: AwaitingAcks[list[tuple[int, str]]] = AwaitingAcks()

    def key(self, partition: int) -> str:
        return self._due.keys.output_outbox(partition)

    def write_commands(
        self, snapshots: Sequence[OutputMessage], examples: Sequence[OutputMessage]
    ) -> list[Command]:
        """One ``HSET`` per partition with the round's outputs there."""
        parts: dict[int, list[bytes]] = {}
        for code, messages in ((b"s", snapshots), (b"t", examples)):
            for m in messages:
                key = m.key or b""
                parts.setdefault(m.partition, []).append(
                    code + _LENGTH.pack(len(key)) + key + _LENGTH.pack(len(m.value)) + m.value
                )
        field = f"{self._token}:{self._round}"
        self._written = [(p, field) for p in parts]
        return [("HSET", self.key(p), field, b"".join(blobs)) for p, blobs in parts.items()]

    def saved(self) -> None:
        """The save ran: the next round writes a new field; forget what it confirmed."""
        self._round += 1
        self.confirmed()

    def confirmed(self) -> None:
        """The commands of :meth:`confirm_commands` ran: forget what they deleted."""
        self._unconfirmed.confirmed()

    def sent(self, deliveries: list[asyncio.Future[Any]]) -> None:
        """The outputs of the last save were sent; drop them once ``deliveries`` are acked."""
        if self._written:
            self._unconfirmed.add(deliveries, self._written)
            self._written = []

    def confirm_commands(self) -> list[Command]:
        """Delete the fields whose outputs Kafka acknowledged (a failed delivery keeps its
        field: the partition's next owner publishes it again)."""
        return [
            ("HDEL", self.key(p), field)
            for fields in self._unconfirmed.acknowledged()
            for p, field in fields
        ]

    def read_command(self, partition: int) -> Command:
        return ("HGETALL", self.key(partition))

    def unsent(
        self, partition: int, reply: object
    ) -> tuple[dict[str, list[OutputMessage]], list[Command]]:
        """From a partition's outbox (``HGETALL`` reply): messages to publish again, by topic
        name, and the commands that delete them (run once Kafka acknowledged them)."""
        by_topic: dict[str, list[OutputMessage]] = {}
        if not isinstance(reply, list) or not reply:
            return by_topic, []
        for value in reply[1::2]:
            for code, key, message in _unpack(bytes(value)):
                by_topic.setdefault(_TOPICS[code], []).append(
                    OutputMessage(partition, key or None, message)
                )
        fields = [bytes(f) for f in reply[::2]]
        return by_topic, [("HDEL", self.key(partition), *fields)]


def _unpack(blob: bytes) -> list[tuple[bytes, bytes, bytes]]:
    out, at = [], 0
    while at < len(blob):
        code = blob[at : at + 1]
        (n,) = _LENGTH.unpack_from(blob, at + 1)
        key = blob[at + 5 : at + 5 + n]
        at += 5 + n
        (n,) = _LENGTH.unpack_from(blob, at)
        out.append((code, key, blob[at + 4 : at + 4 + n]))
        at += 4 + n
    return out
