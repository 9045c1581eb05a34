"""The query API's JSON answers: a body, an error answer, and the error a handler raises."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from streams.api.views import error_body

__all__ = ["ApiError", "error_response", "json_response"]


def json_response(body: Any, status: int = 200, **headers: str) -> web.Response:
    """A JSON answer (orjson)."""
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def error_response(status: int, message: str, **headers: str) -> web.Response:
    """An error answer (:func:`streams.api.views.error_body`)."""
    return json_response(error_body(status, message), status, **headers)


class ApiError(web.HTTPException):
    """Raised by a handler: answers ``status`` with the error body of ``message``."""

    def __init__(self, status: int, message: str, **headers: str) -> None:
        self.status_code = status
        super().__init__(
            text=orjson.dumps(error_body(status, message)).decode(),
            content_type="application/json",
            headers=headers,
        )
