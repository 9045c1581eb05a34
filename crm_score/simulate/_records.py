"""The in-memory event record the generators produce, and time formatting helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "DAY",
    "HOUR",
    "KINDS",
    "MARKETING",
    "PURCHASE",
    "SERVICE",
    "SOURCES",
    "EventRecord",
    "rfc3339",
    "rfc3339_many",
]

DAY = 86_400.0
HOUR = 3_600.0

#: Kind names, indexed by the kind codes below; each kind has its own topic.
KINDS: tuple[str, str, str] = ("purchase", "service", "marketing")
PURCHASE, SERVICE, MARKETING = 0, 1, 2
#: The ``source`` envelope field per kind code.
SOURCES: tuple[str, str, str] = ("shop", "helpdesk", "esp")


class EventRecord(NamedTuple):
    """One valid event before it gets an id and is encoded.

    ``time`` is seconds since the simulation start; ``extra`` holds envelope fields that vary per
    event (``owner``, ``contact``). Payload dicts may be shared between records; never mutate.
    """

    time: float
    kind: int
    customer: int
    type: str
    payload: dict[str, Any]
    extra: dict[str, Any] | None = None


def rfc3339(epoch_seconds: int) -> str:
    """RFC 3339 UTC timestamp with an explicit offset.

    >>> rfc3339(1767225600)
    '2026-01-01T00:00:00+00:00'
    """
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat()


def rfc3339_many(epoch_seconds: npt.NDArray[np.int64]) -> list[str]:
    """Vectorised :func:`rfc3339`.

    >>> rfc3339_many(np.array([1767225600, 1767225661]))
    ['2026-01-01T00:00:00+00:00', '2026-01-01T00:01:01+00:00']
    """
    naive = np.datetime_as_string(epoch_seconds.astype("datetime64[s]"), unit="s")
    return [f"{text}+00:00" for text in naive.tolist()]
