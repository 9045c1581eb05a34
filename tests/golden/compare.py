"""Record-by-record comparison of output records with the golden ones.

Two records match when they have the same keys in the same order, strings, ints, booleans and
None are equal (and of the same JSON type), lists have the same length and matching items, and
floats are within ``1e-9`` absolute or relative. The first mismatch is described by the record's
number, what it is (type, customer, time) and the path of the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from itertools import zip_longest

from tests.golden.scenario import Record

__all__ = ["TOLERANCE", "describe", "first_difference"]

#: Absolute or relative tolerance on floats.
TOLERANCE = 1e-9


def describe(record: Record | None) -> str:
    """What a record is, in a few words (for failure messages)."""
    if record is None:
        return "nothing (the stream ended)"
    value = record.get("value")
    if isinstance(value, dict):
        who = value.get("customer_id", "-")
        when = value.get("as_of") or value.get("event_time") or value.get("snapshot_at")
        what = value.get("alert_type") or value.get("trigger") or ""
        return f"{record.get('type')} {what} of {who} at {when}".replace("  ", " ")
    return ", ".join(f"{k}={v!r}" for k, v in record.items())


def _diff(path: str, expected: object, actual: object) -> Iterator[str]:
    if isinstance(expected, float) and isinstance(actual, float):
        if not math.isclose(expected, actual, rel_tol=TOLERANCE, abs_tol=TOLERANCE):
            yield f"{path}: expected {expected!r}, got {actual!r}"
    elif type(expected) is not type(actual):
        yield f"{path}: expected {expected!r} ({type(expected).__name__}), got {actual!r} " + (
            f"({type(actual).__name__})"
        )
    elif isinstance(expected, dict) and isinstance(actual, dict):
        if list(expected) != list(actual):
            yield f"{path}: keys differ: expected {list(expected)}, got {list(actual)}"
            return
        for key, value in expected.items():
            yield from _diff(f"{path}.{key}", value, actual[key])
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            yield f"{path}: expected {len(expected)} items, got {len(actual)}: {actual!r}"
            return
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            yield from _diff(f"{path}[{i}]", e, a)
    elif expected != actual:
        yield f"{path}: expected {expected!r}, got {actual!r}"


def first_difference(expected: Iterable[Record], actual: Iterable[Record]) -> str | None:
    """Where ``actual`` first departs from ``expected``, or None when every record matches."""
    for n, (want, got) in enumerate(zip_longest(expected, actual)):
        if want is None or got is None:
            return (
                f"record {n}: expected {describe(want)}, got {describe(got)} "
                "(the streams differ in length)"
            )
        for problem in _diff("record", want, got):
            return f"record {n} ({describe(want)}): {problem}"
    return None
