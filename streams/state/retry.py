"""Retrying a Redis step with exponential backoff until it succeeds or the service stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Counter
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from crm_core.errors import StateStoreError

__all__ = ["PING_SECONDS", "RedisSteps", "answers_ping", "redis_error_kind", "retrying"]

T = TypeVar("T")

#: How long a health check waits for Redis' PING: a hung Redis must not hang /health (the
#: reply timeout, ``CRM_REDIS_TIMEOUT_SECONDS``, may be much longer).
PING_SECONDS = 2.0


async def answers_ping(client: Redis) -> bool:
    """Whether Redis answers PING within :data:`PING_SECONDS` (never raises)."""
    try:
        return bool(await asyncio.wait_for(client.ping(), PING_SECONDS))
    except Exception:
        return False


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    errors: tuple[type[BaseException], ...],
    stopping: asyncio.Event,
    log: logging.Logger,
    what: str = "",
    on_error: Callable[[BaseException], None] | None = None,
) -> T:
    """Run ``call`` until it returns; on ``errors`` (each passed to ``on_error`` first) wait
    0.1 s, doubling up to 5 s, and try again (Redis may restart under us), unless ``stopping``
    is set: then re-raise."""
    delay = 0.1
    while True:
        try:
            return await call()
        except errors as exc:
            if on_error is not None:
                on_error(exc)
            if stopping.is_set():
                raise
            log.warning("%s%s; retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def redis_error_kind(exc: BaseException) -> str:
    """What kind of Redis failure ``exc`` (or what it was raised from) is: ``oom`` (out of
    memory, writes refused), ``readonly`` (a replica), ``timeout``, ``connection`` (refused,
    reset, closed) or ``other`` (e.g. a script cache lost in a restart)."""
    text = str(exc)
    if "OOM" in text:
        return "oom"
    if "READONLY" in text:
        return "readonly"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TimeoutError | redis_errors.TimeoutError):
            return "timeout"
        if isinstance(cause, OSError | redis_errors.ConnectionError):
            return "connection"
        cause = cause.__cause__
    return "other"


class RedisSteps:
    """Runs a service's Redis steps with :func:`retrying`, counts each failure by kind in
    ``errors`` (a Prometheus counter labelled ``kind``) and keeps why the last one failed
    (:attr:`failing`) until :meth:`recovered` or the failed step goes through (another read
    going through says nothing of writes)."""

    def __init__(self, errors: Counter, stopping: asyncio.Event, log: logging.Logger) -> None:
        self._errors = errors
        self._stopping = stopping
        self._log = log
        self.failing: str | None = None

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` until it succeeds (raises only once the service is stopping). A step that
        failed and then went through clears :attr:`failing`: whatever Redis refused it, it
        takes now (else a failure in a round's last step would be reported until the next
        round, which may never come once the input is read)."""
        failures = 0

        def failed(exc: BaseException) -> None:
            nonlocal failures
            failures += 1
            self.failed(exc)

        result = await retrying(
            call,
            errors=(StateStoreError,),
            stopping=self._stopping,
            log=self._log,
            on_error=failed,
        )
        if failures:
            self.recovered()
        return result

    def recovered(self) -> None:
        """Redis took a round's writes again."""
        self.failing = None

    def failed(self, exc: BaseException) -> None:
        """Count a failed step and remember why it failed."""
        kind = redis_error_kind(exc)
        self._errors.labels(kind).inc()
        self.failing = f"Redis {kind}: {exc}"
