"""Hostile clients against the query API on the real Redis: oversized request lines and headers,
a loop of unauthenticated requests with an 8,000-character path, and the headers every answer
carries (``streams/api/guard.py``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from crm_core.settings import Settings
from streams.api.audit import AuditLog
from streams.api.guard import DEFAULT_POLICY, OPS_PAGE_POLICY
from streams.api.server import HANDLERS, mount_api
from streams.state.keys import Layout

pytestmark = pytest.mark.integration

LONG_PATH = "/api/customers/" + "x" * (8000 - len("/api/customers/"))  # the request


@dataclass
class Served:
    client: TestClient[Any, Any]
    api: web.Application
    settings: Settings

    async def raw(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send ``request`` as is on a new connection; status, headers and body of the answer
        (status 0: the server closed the connection before the client could read one)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.client.server.port)
        try:
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
        except ConnectionResetError:  # it answered and closed while the request was still sent
            return 0, {}, b""
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        return int(status_line.split()[1]), headers, body

    async def audit(self, redis_client: aioredis.Redis) -> list[tuple[str, str, int]]:
        entries = await AuditLog(redis_client, Layout(self.settings.redis_key_prefix)).read(1000)
        return [(e.path, e.decision, e.status) for e in entries]

    def refused(self, reason: str) -> float:
        metrics = self.api[HANDLERS].metrics
        value = metrics.registry.get_sample_value(
            "crm_api_refused_requests_total", {"reason": reason}
        )
        return 0.0 if value is None else value


@pytest.fixture
async def served(isolated_settings: Settings) -> AsyncIterator[Served]:
    settings = isolated_settings.model_copy(update={"api_auth_failures_per_minute": 5})
    root = web.Application()
    api = mount_api(root, settings)
    client: TestClient[Any, Any] = TestClient(TestServer(root))
    await client.start_server()
    yield Served(client, api, settings)
    await client.close()


def _get(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: test", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode()


async def test_oversized_request_lines_and_headers_get_414_and_431_without_a_traceback(
    served: Served, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    status, _, body = await served.raw(_get(LONG_PATH))
    assert status == 401, body
    [(path, decision, code)] = await served.audit(redis_client)
    assert (len(path), path[:20], decision, code) == (256, LONG_PATH[:20], "unauthenticated", 401)

    answers = [
        await served.raw(_get("/api/customers/" + "x" * 9000)),
        await served.raw(_get("/api/health?" + "q" * 200_000)),
        await served.raw(_get("/api/health", "X-Big: " + "b" * 10_000)),
        await served.raw(_get("/api/health", *(f"X-H{i}: {'h' * 1000}" for i in range(40)))),
    ]
    assert [status for status, _, _ in answers] == [414, 414, 431, 431]
    for status, headers, body in answers:
        assert orjson.loads(body)["error"]["status"] == status
        assert headers["X-Content-Type-Options"] == "nosniff"
    assert served.refused("request_line_too_long") == 2
    assert served.refused("headers_too_large") == 2

    status, _, _ = await served.raw(_get("/api/health?" + "q" * 2_000_000))  # past aiohttp's
    assert status in (400, 0)
    warnings = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
    assert len(warnings) == 1 and "could not be parsed" in warnings[0] and len(warnings[0]) < 300
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text
    assert len(await served.audit(redis_client)) == 1  # none of these was audited


async def test_a_loop_of_unauthenticated_requests_is_audited_once_and_rate_limited(
    served: Served, redis_client: aioredis.Redis
) -> None:
    answers = [await served.client.get(LONG_PATH) for _ in range(12)]
    assert [a.status for a in answers] == [401] * 5 + [429] * 7
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
    audit = await served.audit(redis_client)
    assert [(len(p), d, s) for p, d, s in audit] == [(256, "unauthenticated", 401)]
    assert (served.refused("unauthenticated"), served.refused("rate_limited")) == (5, 7)
    key = Layout(served.settings.redis_key_prefix).audit
    assert await redis_client.xlen(key) == 1


async def test_every_answer_carries_the_security_headers(served: Served) -> None:
    targets = ["/ops", "/ops/ops.js", "/ops/ops.css", "/api/health", "/api/segments", "/nope"]
    seen = {}
    for target in targets:
        response = await served.client.get(target)
        seen[target] = (response.status, response.headers.get("Content-Security-Policy"))
        assert response.headers["X-Content-Type-Options"] == "nosniff", target
        assert response.headers["Referrer-Policy"] == "no-referrer", target
        assert response.headers["X-Frame-Options"] == "DENY", target
    assert seen == {
        "/ops": (200, OPS_PAGE_POLICY),
        "/ops/ops.js": (200, DEFAULT_POLICY),
        "/ops/ops.css": (200, DEFAULT_POLICY),
        "/api/health": (200, DEFAULT_POLICY),
        "/api/segments": (401, DEFAULT_POLICY),
        "/nope": (404, DEFAULT_POLICY),
    }
