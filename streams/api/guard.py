"""What every request meets before a handler: size limits, security headers, and a per-address
limit on failed authentications.

- **Size limits.** A request line over :data:`MAX_REQUEST_LINE` bytes is answered 414, headers
  over :data:`MAX_HEADER_FIELD` bytes each or :data:`MAX_HEADERS` together 431, with the API's
  JSON error body and nothing logged (counted in ``crm_api_refused_requests``). aiohttp's own
  parser limits (8 KiB, whose refusals it logs as ERROR tracebacks and answers 400) are raised
  to :data:`PARSER_LIMIT` so that these answers are ours; what is larger still is refused by
  aiohttp with 400, logged as one WARNING line without traceback (:class:`QuietParserErrors`).
- **Headers.** Every response carries ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY`` and a Content-Security-Policy:
  the ops page's allows only its own scripts, styles and ``/api/ops``; everything else gets
  ``default-src 'none'``.
- **Failed authentication** (:class:`AuthFailures`): counted per client address in fixed
  one-minute windows. The first failure of a window is audited; the others only counted
  (``crm_api_refused_requests{reason="unauthenticated"}``), so a loop of bad requests cannot
  fill the audit stream. Past ``CRM_API_AUTH_FAILURES_PER_MINUTE`` failures an address gets 429
  (with ``Retry-After``) without its key being looked up, until the window ends. The table
  keeps at most :data:`MAX_ADDRESSES` addresses (oldest windows dropped first), so it is
  bounded whatever the number of clients. The address is the TCP peer: behind a proxy, every
  client shares the proxy's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from streams.api.answers import error_response
from streams.api.metrics import ApiMetrics

__all__ = [
    "MAX_ADDRESSES",
    "MAX_HEADERS",
    "MAX_HEADER_FIELD",
    "MAX_REQUEST_LINE",
    "PARSER_LIMIT",
    "AuthFailures",
    "QuietParserErrors",
    "clip",
    "harden",
]

MAX_REQUEST_LINE: Final = 8 * 1024
MAX_HEADER_FIELD: Final = 8 * 1024
MAX_HEADERS: Final = 32 * 1024
PARSER_LIMIT: Final = 1024 * 1024
MAX_ADDRESSES: Final = 10_000
WINDOW_SECONDS: Final = 60.0

#: The ops page loads its own script, style and Chart.js, and polls /api/ops; nothing else.
OPS_PAGE_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DEFAULT_POLICY: Final = "default-src 'none'; frame-ancestors 'none'"
_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def clip(text: str, limit: int = 256) -> str:
    """``text`` cut to ``limit`` characters (marked with ``…`` when cut): what of a client's
    string may be logged or audited."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AuthFailures:
    """Failed authentications per client address, in fixed one-minute windows."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = per_minute
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # address -> (window start, failures)

    def __len__(self) -> int:
        """Addresses tracked (at most :data:`MAX_ADDRESSES`)."""
        return len(self._windows)

    def blocked(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        start, failures = self._windows.get(address, (0.0, 0))
        left = start + WINDOW_SECONDS - self._clock()
        return left if failures >= self._limit and left > 0 else None

    def failed(self, address: str) -> bool:
        """Count a failure; True when it is the window's first (the one to audit)."""
        now = self._clock()
        start, failures = self._windows.get(address, (now, 0))
        if now - start >= WINDOW_SECONDS:
            start, failures = now, 0
        self._windows.pop(address, None)  # re-inserted last: the dict stays oldest-first
        self._windows[address] = (start, failures + 1)
        while len(self._windows) > MAX_ADDRESSES:
            del self._windows[next(iter(self._windows))]
        return failures == 0


class QuietParserErrors(logging.Filter):
    """Turns aiohttp's ERROR traceback for a request it could not parse into one WARNING line
    (the client sent garbage; there is no bug to trace)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = "refused a request that could not be parsed: %s"
            record.args = (clip(str(exc).replace("\n", " "), 200),)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _refusal(status: int, message: str) -> web.Response:
    return error_response(status, message, Connection="close")


def _size_limits(metrics: ApiMetrics) -> Middleware:
    @web.middleware
    async def size_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        line = len(request.method) + len(request.raw_path) + 10  # "GET <target> HTTP/1.1"
        if line > MAX_REQUEST_LINE:
            metrics.refused.labels("request_line_too_long").inc()
            return _refusal(414, f"the request line is over {MAX_REQUEST_LINE} bytes")
        sizes = [len(name) + len(value) + 4 for name, value in request.raw_headers]
        if sizes and (max(sizes) > MAX_HEADER_FIELD or sum(sizes) > MAX_HEADERS):
            metrics.refused.labels("headers_too_large").inc()
            return _refusal(
                431,
                f"a header is over {MAX_HEADER_FIELD} bytes or all are over {MAX_HEADERS}",
            )
        return await handler(request)

    return size_limits


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(_HEADERS)
    ops_page = request.path == "/ops"
    response.headers["Content-Security-Policy"] = OPS_PAGE_POLICY if ops_page else DEFAULT_POLICY


def harden(root: web.Application, metrics: ApiMetrics) -> None:
    """Put the size limits and the security headers on ``root`` (before it starts), and quiet
    aiohttp's parser tracebacks in this process."""
    root.middlewares.insert(0, _size_limits(metrics))
    root.on_response_prepare.append(_security_headers)
    # aiohttp reads these when its server starts (web.Application(handler_args=...) for an app
    # we build; Faust builds the worker's, so they are set on it here).
    limits = {"max_line_size": PARSER_LIMIT, "max_field_size": PARSER_LIMIT}
    root._handler_args = {**(root._handler_args or {}), **limits}
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietParserErrors) for f in server_log.filters):
        server_log.addFilter(QuietParserErrors())
