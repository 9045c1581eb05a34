"""A Redis step that failed says so (/health's reason, a metric by kind) until Redis takes it:
then the reason clears, even when no round follows to clear it."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import ResponseError

from crm_core.errors import StateStoreError
from streams.state.retry import RedisSteps


async def test_a_step_that_went_through_after_failing_clears_the_reason() -> None:
    errors = Counter("redis_errors", "by kind", ["kind"], registry=CollectorRegistry())
    steps = RedisSteps(errors, asyncio.Event(), logging.getLogger("test"))
    seen: list[str | None] = []
    refusals = 2

    async def save() -> str:
        nonlocal refusals
        seen.append(steps.failing)
        if refusals:
            refusals -= 1
            oom = "OOM command not allowed when used memory > 'maxmemory'."
            raise StateStoreError(f"Redis refused a command: {oom}") from ResponseError(oom)
        return "saved"

    assert await steps.run(save) == "saved"
    assert seen[0] is None and seen[1] is not None and "Redis oom" in seen[1], seen
    assert steps.failing is None
    assert errors.labels("oom")._value.get() == 2


async def test_a_read_going_through_does_not_clear_a_refused_write() -> None:
    errors = Counter("redis_errors", "by kind", ["kind"], registry=CollectorRegistry())
    steps = RedisSteps(errors, asyncio.Event(), logging.getLogger("test"))
    steps.failed(StateStoreError("READONLY You can't write against a read only replica."))

    async def read() -> int:
        return 1

    assert await steps.run(read) == 1
    assert steps.failing is not None and "readonly" in steps.failing
