"""The request guard's pieces without a server: the per-address failure windows, clipping, the
parser-error filter, and the ops page's static files (no HTML built from strings)."""

from __future__ import annotations

import logging
import re
from importlib import resources

from aiohttp.http_exceptions import LineTooLong

import streams.api.guard as guard
from streams.api.guard import AuthFailures, QuietParserErrors, clip

STATIC = resources.files("streams.api").joinpath("static")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_is_blocked_after_its_failures_until_the_window_ends() -> None:
    clock = Clock()
    failures = AuthFailures(per_minute=3, clock=clock)
    firsts = [failures.failed("10.0.0.1") for _ in range(3)]
    assert firsts == [True, False, False]  # only the window's first is audited
    assert failures.blocked("10.0.0.2") is None
    clock.now += 20
    assert failures.blocked("10.0.0.1") == 40
    clock.now += 40
    assert failures.blocked("10.0.0.1") is None
    assert failures.failed("10.0.0.1")  # a new window


def test_the_address_table_stays_bounded() -> None:
    clock = Clock()
    failures = AuthFailures(per_minute=1, clock=clock)
    for n in range(guard.MAX_ADDRESSES + 50):
        failures.failed(f"a{n}")
    assert len(failures) == guard.MAX_ADDRESSES
    assert failures.blocked("a0") is None  # the oldest went first
    assert failures.blocked(f"a{guard.MAX_ADDRESSES + 49}") is not None


def test_clip_keeps_short_strings_and_marks_cut_ones() -> None:
    assert clip("/api/customers/c-1") == "/api/customers/c-1"
    cut = clip("x" * 8000)
    assert len(cut) == 256 and cut.endswith("…")


def test_parser_errors_become_one_warning_line_without_traceback() -> None:
    try:
        raise LineTooLong(b"/" + b"a" * 5000, 8190)
    except LineTooLong as exc:
        record = logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request",
            (),
            (type(exc), exc, exc.__traceback__),
        )
    assert QuietParserErrors().filter(record)
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    assert len(record.getMessage()) < 300


def test_the_ops_page_builds_no_html_from_strings() -> None:
    page = STATIC.joinpath("ops.html").read_text(encoding="utf-8")
    script = STATIC.joinpath("ops.js").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline script (the CSP refuses it)"
    assert "<style" not in page and "style=" not in page, "inline style (the CSP refuses it)"
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script, sink
    assert "textContent" in script
