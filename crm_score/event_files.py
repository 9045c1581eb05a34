"""Event files: read JSONL/CSV files of events for producing, and write them.

Each message's kind (and so its topic) follows from the event type (:func:`kind_for_type`).
Files can carry invalid lines on purpose: those are kept as raw bytes for a fallback kind's
topic, so the worker dead-letters them.

Examples
--------
>>> kind_for_type("order_returned"), kind_for_type("message_opened"), kind_for_type("nope")
('purchase', 'marketing', None)
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from crm_core.errors import CrmScoringError, EventRejected
from crm_core.settings import INPUT_KINDS
from schemas import Event, EventParser
from scorers.dedup import Dedup, Verdict, release_order
from scorers.deltas import delta_for
from scorers.profile import Profile, ProfileDelta, apply_delta

__all__ = [
    "CSV_COLUMNS",
    "EventFileError",
    "FileMessage",
    "ProducibleMessage",
    "kind_for_type",
    "profiles_from_file",
    "read_event_file",
    "write_csv",
    "write_jsonl",
]

_TYPE_PREFIXES = (("order_", "purchase"), ("ticket_", "service"), ("message_", "marketing"))
_ENVELOPE_STRINGS = ("event_id", "customer_id", "event_time", "source", "department", "owner")
#: Columns :func:`write_csv` writes; ``contact`` and ``payload`` hold JSON objects.
CSV_COLUMNS: tuple[str, ...] = ("schema_version", *_ENVELOPE_STRINGS, "type", "contact", "payload")


class EventFileError(CrmScoringError):
    """An event file cannot be read or written as asked (the message says which line and why)."""


class ProducibleMessage(Protocol):
    """Anything with a kind, key and value, e.g. ``simulate.SimulatedMessage`` or FileMessage."""

    @property
    def kind(self) -> str: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class FileMessage:
    """One message read from an event file; ``line`` is its 1-based line (JSONL) or row (CSV)."""

    kind: str
    key: bytes | None
    value: bytes
    line: int


def kind_for_type(event_type: object) -> str | None:
    """``purchase`` for ``order_*``, ``service`` for ``ticket_*``, ``marketing`` for
    ``message_*``; ``None`` for anything else."""
    if isinstance(event_type, str):
        for prefix, kind in _TYPE_PREFIXES:
            if event_type.startswith(prefix):
                return kind
    return None


# --- files ---------------------------------------------------------------------------------


def _classify(event: object, fallback: str | None, where: str) -> tuple[str, bytes | None]:
    kind = kind_for_type(event.get("type")) if isinstance(event, dict) else None
    customer = event.get("customer_id") if isinstance(event, dict) else None
    key = customer.encode() if isinstance(customer, str) else None
    if kind is None:
        if fallback is None:
            raise EventFileError(
                f"{where}: no known event type (order_*, ticket_*, message_*), so its topic is "
                "unknown; fix or remove the line, or send such lines for dead-lettering with "
                "`crm-score produce --kind KIND`"
            )
        kind = fallback
    return kind, key


def _read_jsonl(path: Path, fallback: str | None) -> Iterator[FileMessage]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                event: object = orjson.loads(line)
            except orjson.JSONDecodeError:
                event = None
            kind, key = _classify(event, fallback, f"{path}:{number}")
            yield FileMessage(kind, key, line, number)


def _json_cell(cell: str) -> object:
    try:
        return orjson.loads(cell)
    except orjson.JSONDecodeError:
        return cell


def _csv_event(row: dict[str | None, str | list[str] | None]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or not isinstance(cell, str) or cell == "":
            continue
        if column == "schema_version":
            event[column] = int(cell) if cell.strip().isdigit() else cell
        elif column in _ENVELOPE_STRINGS or column == "type":
            event[column] = cell
        elif "." in column:
            head, name = column.split(".", 1)
            nested = event.setdefault(head, {})
            if isinstance(nested, dict):
                nested[name] = cell if head == "contact" else _json_cell(cell)
        else:
            event[column] = _json_cell(cell)
    return event


def _read_csv(path: Path, fallback: str | None) -> Iterator[FileMessage]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for number, row in enumerate(csv.DictReader(fh), start=1):
            event = _csv_event(row)
            kind, key = _classify(event, fallback, f"{path}: row {number}")
            yield FileMessage(kind, key, orjson.dumps(event), number)


def read_event_file(path: Path, *, fallback_kind: str | None = None) -> Iterator[FileMessage]:
    """Messages from a ``.jsonl``/``.ndjson``/``.json`` (one event per line) or ``.csv`` file.

    JSONL lines are sent verbatim. A line that is not JSON, or has no ``order_*``/``ticket_*``/
    ``message_*`` type, goes to the topic of ``fallback_kind`` (so the worker dead-letters it);
    without a fallback such a line raises :class:`EventFileError`. Blank lines are skipped.

    CSV has one event per row with the envelope columns (:data:`CSV_COLUMNS`); the payload is
    either a ``payload`` column holding a JSON object or ``payload.<field>`` columns, and the
    same for ``contact``. Empty cells are left out. ``payload.<field>`` and unknown cells are
    decoded as JSON when they are valid JSON, else kept as strings: quote a string that looks
    like a number (``"123"``). Each row is re-encoded as one JSON object.
    """
    if fallback_kind is not None and fallback_kind not in INPUT_KINDS:
        raise EventFileError(f"fallback kind {fallback_kind!r} is not one of {INPUT_KINDS}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path, fallback_kind)
    if suffix == ".csv":
        return _read_csv(path, fallback_kind)
    raise EventFileError(f"{path}: unknown file type {suffix!r}; use .jsonl, .ndjson or .csv")


def write_jsonl(messages: Iterable[ProducibleMessage], path: Path) -> int:
    """Write each message's value as one line; returns the number written.

    Only values are written: :func:`read_event_file` recovers kind and key from each event
    (non-JSON values then need a fallback kind).
    """
    count = 0
    with path.open("wb") as fh:
        for message in messages:
            if b"\n" in message.value or b"\r" in message.value:
                raise EventFileError(f"message {count + 1} contains a line break; not JSONL-safe")
            fh.write(message.value + b"\n")
            count += 1
    return count


def write_csv(messages: Iterable[ProducibleMessage], path: Path) -> int:
    """Write valid events as CSV rows with :data:`CSV_COLUMNS`; returns the number written.

    Raises :class:`EventFileError` for a value that is not a JSON object or has a field the CSV
    layout has no column for (write those with :func:`write_jsonl` instead).
    """
    count = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for message in messages:
            try:
                event = orjson.loads(message.value)
            except orjson.JSONDecodeError:
                event = None
            if not isinstance(event, dict) or set(event) - set(CSV_COLUMNS):
                raise EventFileError(
                    f"message {count + 1} is not an event object with only the columns "
                    f"{CSV_COLUMNS}; write it as JSONL instead"
                )
            writer.writerow([_csv_cell(event.get(column)) for column in CSV_COLUMNS])
            count += 1
    return count


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def profiles_from_file(
    path: Path,
    fx_rates: Mapping[str, float],
    *,
    now: datetime,
    dedup_window_days: float = 30.0,
    until: datetime | None = None,
) -> tuple[dict[str, Profile], datetime | None, int]:
    """Customer profiles folded from an event file, the newest event time, and how many lines
    were rejected (invalid, a repeated event id of the same customer, or too old to be
    deduplicated: :mod:`scorers.dedup`, the worker's rule, in its release order). The same
    deltas as the worker, without Kafka or Redis, in the worker's release order. ``until``:
    only events at or before it count (a fit as of then sees what the worker had then)."""
    parser = EventParser(accepted_currencies=frozenset(fx_rates))
    valid: list[tuple[Event, ProfileDelta]] = []
    rejected = 0
    # A line of no known type is rejected, as the worker dead-letters it.
    for message in read_event_file(path, fallback_kind=INPUT_KINDS[0]):
        try:
            event = parser.parse(message.value, message.kind, now)
            valid.append((event, delta_for(event, fx_rates)))
        except EventRejected:
            rejected += 1
    valid.sort(key=lambda pair: release_order(pair[0]))
    dedup = Dedup(dedup_window_days * 86400)
    profiles: dict[str, Profile] = {}
    newest: datetime | None = None
    for event, delta in valid:
        if dedup.admit_event(event) is not Verdict.NEW:
            rejected += 1
            continue
        if until is not None and event.event_time > until:
            continue
        c = event.customer_id
        profiles[c] = apply_delta(profiles.get(c, Profile()), delta)
        newest = event.event_time if newest is None else max(newest, event.event_time)
    return profiles, newest, rejected
