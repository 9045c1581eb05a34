"""Find a key that appears twice in one JSON object, cheaply enough for every input event.

JSON parsers (pydantic's included) keep the last of two equal keys, so
``{"amount_minor": 100, "amount_minor": 100000}`` would silently mean 100000. The fast check
counts colons: outside strings a colon follows each key, so parsing and re-serialising the
document with orjson (~3 µs for a 330-byte event) keeps the number of colons exactly when no
key was dropped. The only way to write a colon that the re-serialised text has and the
original does not is the escape ``\\u003a``, and orjson refuses some JSON that pydantic reads
(NaN, numbers beyond a double); documents with a ``\\u003`` escape, or refused, take the exact
path (the standard library's parser with a hook that sees every object's pairs), which also
names the key.

Examples
--------
>>> duplicate_key(b'{"a": 1, "b": {"c": 2}}') is None
True
>>> duplicate_key(b'{"a": 1, "b": {"c": 2, "c": 3}}')
'c'
>>> duplicate_key(b'{"a\\\\u003a": 1, "a:": 2}')
'a:'
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["duplicate_key"]

_loads, _dumps = orjson.loads, orjson.dumps


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen = dict(pairs)
    if len(seen) != len(pairs):
        keys: set[str] = set()
        for key, _ in pairs:
            if key in keys:
                raise _Duplicate(key)
            keys.add(key)
    return seen


def _exact(raw: bytes) -> str | None:
    try:
        json.loads(
            raw, object_pairs_hook=_pairs, parse_int=str, parse_float=str, parse_constant=str
        )
    except _Duplicate as found:
        return found.key
    return None


def duplicate_key(raw: bytes) -> str | None:
    """The first key found twice in one object of the JSON document ``raw``, or None.

    ``raw`` must be a JSON document that pydantic's parser accepted (so at most ~250 levels
    deep); anything the standard library cannot read raises ``ValueError``.
    """
    if b"\\" not in raw or b"\\u003" not in raw:  # memchr first: most events have no escape
        try:
            again = _dumps(_loads(raw))
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            pass
        else:
            if again.count(b":") == raw.count(b":"):
                return None
    return _exact(raw)
