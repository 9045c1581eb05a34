"""Retrying a Redis step with exponential backoff until it succeeds or the service stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["retrying"]

T = TypeVar("T")


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    errors: tuple[type[BaseException], ...],
    stopping: asyncio.Event,
    log: logging.Logger,
    what: str = "",
) -> T:
    """Run ``call`` until it returns; on ``errors`` wait 0.1 s, doubling up to 5 s, and try
    again (Redis may restart under us), unless ``stopping`` is set: then re-raise."""
    delay = 0.1
    while True:
        try:
            return await call()
        except errors as exc:
            if stopping.is_set():
                raise
            log.warning("%s%s; retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
