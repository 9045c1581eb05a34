"""A minimal Redis connection for the hot path: many packed commands per write, replies read later.

redis-py's asyncio pipeline awaits every reply under its own timeout (~20 µs an event here);
this writes a whole batch at once and parses the replies with hiredis' C reader, and lets the
caller send the next batch before reading the previous one's replies (so Redis and Python work at
the same time). Replies are read in send order by one reader; it is not for concurrent use.

A connection is never read out of step: replies are only read for the oldest send still
unread, and a call that would start a new exchange while earlier replies are unread (or after
a read failed part-way) gets a fresh connection instead; the sends on the old one are then
lost (:attr:`RespConnection.generation`), and their callers send them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlparse

import hiredis

# hiredis' stub types the argument as a 1-tuple; it takes any tuple of str/bytes/int/float.
#: One Redis command as its arguments, as the round's packed writes carry it.
Command = tuple[str | bytes | int, ...]
pack_command = cast(Callable[[Command], bytes], hiredis.pack_command)

__all__ = ["Command", "RespConnection", "Sent", "pack_command"]


@dataclass(frozen=True, slots=True)
class Sent:
    """Commands written on a connection whose replies are still to be read."""

    generation: int
    count: int
    seq: int  # sends before it on the same connection


class RespConnection:
    """One connection to the Redis at ``url`` (redis:// or rediss://, with db and credentials)."""

    def __init__(self, url: str, password: str | None = None, timeout: float = 10.0) -> None:
        parsed = urlparse(url)
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 6379
        self._tls = parsed.scheme == "rediss"
        self._db = int(parsed.path.lstrip("/") or 0)
        self._username = unquote(parsed.username) if parsed.username else None
        self._password = password or (unquote(parsed.password) if parsed.password else None)
        self._timeout = timeout
        self._generation = 0
        self._sent = 0  # sends on this connection
        self._read = 0  # of them, those whose replies were read
        self._parser = hiredis.Reader()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        if self._reader is not None and self._writer is not None:
            return
        context = ssl.create_default_context() if self._tls else None
        self._parser = hiredis.Reader()
        self._sent = self._read = 0
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self._host, self._port, ssl=context), self._timeout
        )
        setup: list[tuple[str | bytes | int, ...]] = []
        if self._password is not None:
            user = (self._username,) if self._username else ()
            setup.append(("AUTH", *user, self._password))
        if self._db:
            setup.append(("SELECT", self._db))
        if setup:
            sent = self.send(b"".join(pack_command(command) for command in setup), len(setup))
            if sent is None:
                raise ConnectionError("Redis closed the connection during set-up")
            for reply in await self.receive(sent):
                if isinstance(reply, hiredis.ReplyError):
                    await self.close()
                    raise ConnectionError(f"Redis refused the connection set-up: {reply}")

    @property
    def generation(self) -> int:
        """Incremented whenever the connection is closed; replies of older sends are lost."""
        return self._generation

    @property
    def connected(self) -> bool:
        """Whether a send would be written now (:meth:`send` does not return None)."""
        return self._writer is not None and not self._writer.is_closing()

    def send(self, packed: bytes, count: int) -> Sent | None:
        """Write ``count`` packed commands now, without waiting; None when not connected.

        Redis executes commands from one connection in order, so what was sent on a connection
        that later failed was executed up to some point and not after it.
        """
        if self._writer is None or not self.connected:
            return None
        self._writer.write(packed)
        self._sent += 1
        return Sent(self._generation, count, self._sent - 1)

    async def receive(self, sent: Sent) -> list[object]:
        """The replies of ``sent`` (errors as values), read in the order things were sent.

        Raises ConnectionError when the connection failed since (it is then closed), or when
        an older send's replies are still unread (reading on would take its replies for these).
        """
        if sent.generation != self._generation or self._reader is None or self._writer is None:
            raise ConnectionError("the connection these commands were sent on was lost")
        if sent.seq != self._read:
            await self.close()
            raise ConnectionError("replies read out of send order; the connection was dropped")
        try:
            await self._writer.drain()
            replies: list[object] = []
            while len(replies) < sent.count:
                reply = self._parser.gets()
                if reply is not False:
                    replies.append(reply)
                    continue
                chunk = await asyncio.wait_for(self._reader.read(1 << 20), self._timeout)
                if not chunk:
                    raise ConnectionError("Redis closed the connection")
                self._parser.feed(chunk)
            self._read += 1
            return replies
        except BaseException:
            await self.close()
            raise

    async def connect(self) -> None:
        """Connect (and authenticate) if not connected."""
        await self._connect()

    async def execute(self, packed: bytes, count: int) -> list[object]:
        """Send ``count`` packed commands and return their replies (errors as values).

        Any I/O failure closes the connection (the next call reconnects) and is raised. Sent
        on a fresh connection when replies of earlier sends are unread (those are lost).
        """
        if self._read != self._sent:
            await self.close()
        await self._connect()
        sent = self.send(packed, count)
        if sent is None:
            raise ConnectionError("not connected")
        return await self.receive(sent)

    async def close(self) -> None:
        """Close the socket (idempotent)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            self._generation += 1
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
