"""RFM quintile scores (1-5) against the live customer population.

:class:`QuintileSketch` summarises the population's recency, frequency and monetary values in
three mergeable KLL quantile sketches (Apache DataSketches). Each partition builds one, stores
:meth:`QuintileSketch.to_bytes` in Redis, and a refresher merges them and publishes
:class:`RfmBoundaries`: the 20/40/60/80 % cut points of each dimension, under a version number.

Feeding the sketch: one :meth:`~QuintileSketch.update` per customer, with RFM measured at the same
``as_of`` for every customer (a quantile sketch cannot forget a value, so rebuild it at every
refresh from a scan of the profiles instead of updating it per event). Customers who never
ordered are left out: their scores are ``None``.

Ties. A cut point is a population value: the smallest value ``v`` with at least the cut's share
of customers at or below ``v`` (numpy's ``method="inverted_cdf"``). A value equal to a cut point
belongs to the bucket of smaller values, so every customer gets ``1 + (number of cut points
strictly below the value)`` for F and M, and ``5 - (that number)`` for R (fewer days since the
last order is better). With many ties the buckets are not fifths: if 60 % of customers ordered
once, the F cut points are ``(1, 1, 1, x)``, one-time buyers all get F = 1 and F = 2 and 3 are
empty. So F >= s exactly when the value is above the (s - 1)-th cut point: above a value that at
least (s - 1) fifths of the population do not exceed.

Determinism. KLL compacts with random coin flips, and DataSketches seeds that generator from the
system clock; its Python binding has no way to set the seed. So a sketch in estimation mode
(more than ``k`` customers) gives slightly different cut points on every run and for every
insertion or merge order, each within :attr:`QuintileSketch.rank_error` of the exact quantile
(in rank, with 99 % confidence). Up to ``k`` customers it is exact and order-independent. Replay
therefore equals live only if replay reads the boundary versions live published (they are small
and versioned for that reason) rather than recomputing them.

Examples
--------
>>> from datetime import UTC, datetime
>>> from scorers.rfm import Rfm
>>> sketch = QuintileSketch()
>>> for i in range(1, 11):
...     sketch.update(Rfm(recency_days=float(i), frequency=i, monetary_minor=100 * i))
>>> bounds = sketch.boundaries(version=1, as_of=datetime(2026, 1, 1, tzinfo=UTC))
>>> bounds.frequency
(2.0, 4.0, 6.0, 8.0)
>>> bounds.score(recency_days=1.0, frequency=9, monetary_minor=400)
(5, 5, 2)
>>> bounds.score(recency_days=None, frequency=0, monetary_minor=0) is None
True
"""

from __future__ import annotations

import importlib
import math
import struct
from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Protocol

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from crm_core.errors import ModelError
from scorers.rfm import Rfm

__all__ = ["QUINTILE_RANKS", "QuintileSketch", "RfmBoundaries"]

#: The population shares at which the four cut points of each dimension sit.
QUINTILE_RANKS = (0.2, 0.4, 0.6, 0.8)


def _check_cuts(cuts: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if not all(math.isfinite(c) for c in cuts) or list(cuts) != sorted(cuts):
        raise ValueError(f"cut points must be finite and non-decreasing, got {cuts}")
    return cuts


def _to_utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


_Cuts = Annotated[tuple[float, float, float, float], AfterValidator(_check_cuts)]


class RfmBoundaries(BaseModel):
    """The population's quintile cut points for R, F and M, as of one time.

    Frozen; store and share it as JSON (``model_dump_json`` / ``model_validate_json``).
    ``recency_days`` are cut points in days since the last order, ``frequency`` in orders,
    ``monetary_minor`` in minor units of the base currency (net of returns, as :mod:`scorers.rfm`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=0)
    as_of: Annotated[AwareDatetime, AfterValidator(_to_utc)]
    recency_days: _Cuts
    frequency: _Cuts
    monetary_minor: _Cuts

    def score(
        self, recency_days: float | None, frequency: int, monetary_minor: int
    ) -> tuple[int, int, int] | None:
        """``(R, F, M)`` scores, each 1-5; ``None`` for a customer who never ordered.

        A value equal to a cut point goes to the bucket of smaller values (module docstring).

        >>> b = RfmBoundaries(version=1, as_of=datetime(2026, 1, 1, tzinfo=UTC),
        ...     recency_days=(7, 30, 90, 180), frequency=(1, 1, 2, 4),
        ...     monetary_minor=(1000, 2500, 5000, 12000))
        >>> b.score(7.0, 1, 5001)
        (5, 1, 4)
        >>> b.score(400.0, 3, 0)
        (1, 4, 1)
        """
        if recency_days is None:
            return None
        return (
            5 - bisect_left(self.recency_days, recency_days),
            1 + bisect_left(self.frequency, frequency),
            1 + bisect_left(self.monetary_minor, monetary_minor),
        )

    def next_recency_cut(self, recency_days: float) -> float | None:
        """The recency (days) after which R next drops; ``None`` when R is already 1.

        Without a new order recency grows with time, and R drops as soon as recency *exceeds*
        the returned value, so a re-score timer (docs/ARCHITECTURE.md, decision 4) belongs
        strictly after ``last purchase + that many days``; at exactly that time R has not
        changed yet.

        >>> b = RfmBoundaries(version=1, as_of=datetime(2026, 1, 1, tzinfo=UTC),
        ...     recency_days=(7, 30, 90, 180), frequency=(1, 1, 2, 4),
        ...     monetary_minor=(1000, 2500, 5000, 12000))
        >>> b.next_recency_cut(7.0), b.next_recency_cut(8.0), b.next_recency_cut(181.0)
        (7.0, 30.0, None)
        """
        index = bisect_left(self.recency_days, recency_days)
        return self.recency_days[index] if index < len(self.recency_days) else None

    def score_rfm(self, rfm: Rfm) -> tuple[int, int, int] | None:
        """:meth:`score` of an :class:`~scorers.rfm.Rfm` (measured at the time being scored)."""
        return self.score(rfm.recency_days, rfm.frequency, rfm.monetary_minor)


class _Kll(Protocol):
    """The part of ``datasketches.kll_doubles_sketch`` used here (the package ships no types)."""

    @property
    def n(self) -> int: ...
    def is_estimation_mode(self) -> bool: ...
    def update(self, item: float) -> None: ...
    def merge(self, sketch: _Kll) -> None: ...
    def serialize(self) -> bytes: ...
    def get_quantiles(self, ranks: Sequence[float], inclusive: bool = False) -> list[float]: ...
    def normalized_rank_error(self, as_pmf: bool) -> float: ...


# Imported by name because DataSketches has no type information; _Kll types what is used.
_datasketches = importlib.import_module("datasketches")
_MAGIC = b"RFMQ"
_HEADER = struct.Struct(">4sBIII")  # magic, format version, then the three sketch sizes
_FORMAT = 1


def _new_kll(k: int) -> _Kll:
    sketch: _Kll = _datasketches.kll_doubles_sketch(k)
    return sketch


def _read_kll(data: bytes) -> _Kll:
    sketch: _Kll = _datasketches.kll_doubles_sketch.deserialize(data)
    return sketch


class QuintileSketch:
    """Mergeable streaming quantiles of recency, frequency and monetary value.

    ``k`` trades size for accuracy (DataSketches' default 200: about 1.3 % rank error and a few
    KB per dimension at a million customers). Sketches with different ``k`` can be merged; the
    result has the error of the smaller ``k``.
    """

    __slots__ = ("_frequency", "_monetary", "_recency")

    def __init__(self, k: int = 200) -> None:
        if not 8 <= k <= 65_535:
            raise ValueError(f"k must be from 8 to 65535, got {k}")
        self._recency = _new_kll(k)
        self._frequency = _new_kll(k)
        self._monetary = _new_kll(k)

    @property
    def n(self) -> int:
        """Number of customers (with at least one order) in the sketch."""
        return self._recency.n

    @property
    def rank_error(self) -> float:
        """Normalised rank error of any cut point, with 99 % confidence (0 while exact)."""
        sketches = (self._recency, self._frequency, self._monetary)
        if not any(s.is_estimation_mode() for s in sketches):
            return 0.0  # every value is still retained
        return max(s.normalized_rank_error(False) for s in sketches)

    def update(self, rfm: Rfm) -> None:
        """Add one customer's RFM; customers who never ordered are ignored."""
        if rfm.recency_days is None:
            return
        self._recency.update(float(rfm.recency_days))
        self._frequency.update(float(rfm.frequency))
        self._monetary.update(float(rfm.monetary_minor))

    def merge(self, other: QuintileSketch) -> None:
        """Add every customer summarised in ``other`` (e.g. another partition's sketch)."""
        self._recency.merge(other._recency)
        self._frequency.merge(other._frequency)
        self._monetary.merge(other._monetary)

    def to_bytes(self) -> bytes:
        """A compact, portable encoding (DataSketches' KLL format inside a small header)."""
        blobs = [s.serialize() for s in (self._recency, self._frequency, self._monetary)]
        return _HEADER.pack(_MAGIC, _FORMAT, *map(len, blobs)) + b"".join(blobs)

    @classmethod
    def from_bytes(cls, data: bytes) -> QuintileSketch:
        """Decode :meth:`to_bytes`; raises :class:`~crm_core.errors.ModelError` if corrupt."""
        try:
            magic, fmt, *sizes = _HEADER.unpack_from(data)
        except struct.error as exc:
            raise ModelError("not a QuintileSketch: too short; rebuild the sketch.") from exc
        if magic != _MAGIC or fmt != _FORMAT or _HEADER.size + sum(sizes) != len(data):
            raise ModelError(
                f"not a QuintileSketch in format {_FORMAT} (magic {magic!r}, format {fmt}, "
                f"{len(data)} bytes); rebuild the sketch."
            )
        start = _HEADER.size
        blobs = []
        for size in sizes:
            blobs.append(data[start : start + size])
            start += size
        sketch = cls.__new__(cls)
        try:
            sketch._recency, sketch._frequency, sketch._monetary = map(_read_kll, blobs)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"QuintileSketch data is corrupt ({exc}); rebuild it.") from exc
        if len({sketch._recency.n, sketch._frequency.n, sketch._monetary.n}) != 1:
            raise ModelError("QuintileSketch dimensions disagree on the count; rebuild it.")
        return sketch

    def boundaries(self, version: int, as_of: datetime) -> RfmBoundaries:
        """The cut points at :data:`QUINTILE_RANKS`, as :class:`RfmBoundaries`.

        ``as_of`` must be the time the recency values were measured at. Raises
        :class:`~crm_core.errors.ModelError` while no customer has ordered.
        """
        if self.n == 0:
            raise ModelError(
                "no customer with an order in the sketch yet; keep the old boundaries."
            )

        def cuts(sketch: _Kll) -> tuple[float, float, float, float]:
            a, b, c, d = sketch.get_quantiles(QUINTILE_RANKS, inclusive=True)
            return (a, b, c, d)

        return RfmBoundaries(
            version=version,
            as_of=as_of,
            recency_days=cuts(self._recency),
            frequency=cuts(self._frequency),
            monetary_minor=cuts(self._monetary),
        )
