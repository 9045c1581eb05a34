"""A minimal Redis connection for the hot path: one write of many packed commands, one read loop.

redis-py's asyncio pipeline awaits every reply under its own timeout (~20 µs an event here);
this writes a whole batch at once and parses the replies with hiredis' C reader. It is used only
for applying event batches; everything else goes through redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import cast
from urllib.parse import unquote, urlparse

import hiredis

# hiredis' stub types the argument as a 1-tuple; it takes any tuple of str/bytes/int/float.
pack_command = cast(Callable[[tuple[str | bytes | int, ...]], bytes], hiredis.pack_command)

__all__ = ["RespConnection", "pack_command"]


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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        if self._reader is not None and self._writer is not None:
            return
        context = ssl.create_default_context() if self._tls else None
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
            packed = b"".join(pack_command(command) for command in setup)
            for reply in await self._roundtrip(packed, len(setup)):
                if isinstance(reply, hiredis.ReplyError):
                    await self.close()
                    raise ConnectionError(f"Redis refused the connection set-up: {reply}")

    async def execute(self, packed: bytes, count: int) -> list[object]:
        """Send ``count`` packed commands, return their ``count`` replies (errors as values).

        Any I/O failure closes the connection (the next call reconnects) and is raised.
        """
        await self._connect()
        try:
            return await self._roundtrip(packed, count)
        except BaseException:
            await self.close()
            raise

    async def _roundtrip(self, packed: bytes, count: int) -> list[object]:
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise ConnectionError("not connected")
        writer.write(packed)
        await writer.drain()
        parser = hiredis.Reader()
        replies: list[object] = []
        while len(replies) < count:
            chunk = await asyncio.wait_for(reader.read(1 << 20), self._timeout)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            parser.feed(chunk)
            while len(replies) < count and (reply := parser.gets()) is not False:
                replies.append(reply)
        return replies

    async def close(self) -> None:
        """Close the socket (idempotent)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
