"""Named RFM segments (Champions, At Risk, ...) from R, F and M scores.

The segments are rectangles on the 5x5 grid of R score against FM score, read from a YAML file
(``scorers/segments.yaml`` ships with the package) so they can be changed without code. FM is the
mean of the F and M scores made an integer by the file's ``fm_rounding`` rule: ``floor``
(the default, ``(F + M) // 2``) or ``half_up`` (``(F + M + 1) // 2``). :func:`load_segments`
refuses a file whose rectangles do not cover every (R, FM) cell exactly once and names the
uncovered or overlapping cells.

Examples
--------
>>> segments = load_segments()
>>> segments.fm(5, 4)
4
>>> segments.segment_for(5, 5, 4), segments.segment_for(1, 1, 2), segments.segment_for(1, 5, 5)
('Champions', 'Lost', "Can't Lose Them")
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from crm_core.errors import ConfigError

__all__ = ["SCORES", "FmRounding", "SegmentMap", "load_segments"]

#: The possible values of every R, F, M and FM score.
SCORES = range(1, 6)

FmRounding = Literal["floor", "half_up"]
_Score = Annotated[StrictInt, Field(ge=1, le=5)]
_FIX = "Edit the file so that every (R, FM) cell from 1 to 5 belongs to exactly one segment."


class _Rectangle(BaseModel):
    """Inclusive ``[low, high]`` ranges of R and FM scores."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    r: tuple[_Score, _Score]
    fm: tuple[_Score, _Score]

    @model_validator(mode="after")
    def _ordered(self) -> _Rectangle:
        if self.r[0] > self.r[1] or self.fm[0] > self.fm[1]:
            raise ValueError(f"range low > high in r={list(self.r)}, fm={list(self.fm)}")
        return self

    def cells(self) -> list[tuple[int, int]]:
        """Every ``(r, fm)`` cell inside the rectangle."""
        return [
            (r, fm)
            for r in range(self.r[0], self.r[1] + 1)
            for fm in range(self.fm[0], self.fm[1] + 1)
        ]


class _Segment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    cells: list[_Rectangle] = Field(min_length=1)


class _SegmentsFile(BaseModel):
    """The YAML file's schema; the validator checks the grid is covered exactly once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fm_rounding: FmRounding = "floor"
    segments: list[_Segment] = Field(min_length=1)

    @model_validator(mode="after")
    def _partition(self) -> _SegmentsFile:
        names = [segment.name for segment in self.segments]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"segment names must be unique; repeated: {', '.join(duplicates)}")
        owners: dict[tuple[int, int], list[str]] = {(r, fm): [] for r in SCORES for fm in SCORES}
        for segment in self.segments:
            for rectangle in segment.cells:
                for cell in rectangle.cells():
                    owners[cell].append(segment.name)
        problems = []
        uncovered = [_cell(cell) for cell, owner in owners.items() if not owner]
        if uncovered:
            problems.append(f"no segment covers {', '.join(uncovered)}")
        problems += [
            f"{_cell(cell)} is in {' and '.join(owner)}"
            for cell, owner in owners.items()
            if len(owner) > 1
        ]
        if problems:
            raise ValueError(f"segments do not partition the R x FM grid: {'; '.join(problems)}")
        return self


def _cell(cell: tuple[int, int]) -> str:
    return f"(R={cell[0]}, FM={cell[1]})"


@dataclass(frozen=True, slots=True)
class SegmentMap:
    """A validated partition of the R x FM grid into named segments.

    Build it with :func:`load_segments`. ``descriptions`` maps each segment name to its
    description, in the file's order.
    """

    descriptions: Mapping[str, str]
    fm_rounding: FmRounding
    _grid: tuple[tuple[str, ...], ...]  # _grid[r - 1][fm - 1] is the segment name

    @property
    def names(self) -> tuple[str, ...]:
        """Segment names in the file's order."""
        return tuple(self.descriptions)

    def fm(self, f: int, m: int) -> int:
        """The FM score (1-5) from the F and M scores, rounded by ``fm_rounding``.

        >>> load_segments().fm(2, 3)  # floor((2 + 3) / 2)
        2
        """
        _check(f=f, m=m)
        return (f + m) // 2 if self.fm_rounding == "floor" else (f + m + 1) // 2

    def segment_for_cell(self, r: int, fm: int) -> str:
        """The segment of grid cell ``(r, fm)``.

        >>> load_segments().segment_for_cell(3, 3)
        'Needing Attention'
        """
        _check(r=r, fm=fm)
        return self._grid[r - 1][fm - 1]

    def segment_for(self, r: int, f: int, m: int) -> str:
        """The segment of a customer with scores ``r``, ``f`` and ``m`` (each 1-5).

        >>> load_segments().segment_for(4, 1, 2)
        'Promising'
        """
        return self.segment_for_cell(r, self.fm(f, m))


def _check(**scores: int) -> None:
    for name, value in scores.items():
        if isinstance(value, bool) or not isinstance(value, int) or value not in SCORES:
            raise ValueError(f"{name} score must be an integer from 1 to 5, got {value!r}")


def load_segments(path: str | os.PathLike[str] | None = None) -> SegmentMap:
    """Read and validate a segments file; ``None`` reads the one shipped with the package.

    Raises :class:`crm_core.errors.ConfigError` naming the file and the problem (unreadable
    YAML, a wrong field, or the cells left uncovered or covered twice).

    >>> load_segments().names[:3]
    ('Champions', 'Loyal', 'Potential Loyalist')
    """
    if path is None:
        source = "scorers/segments.yaml (package data)"
        text = resources.files("scorers").joinpath("segments.yaml").read_text(encoding="utf-8")
    else:
        source = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read segments file {source}: {exc}") from exc
    try:
        spec = _SegmentsFile.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"segments file {source} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'file'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid segments file {source}: {details}. {_FIX}") from exc
    grid = [["" for _ in SCORES] for _ in SCORES]
    for segment in spec.segments:
        for rectangle in segment.cells:
            for r, fm in rectangle.cells():
                grid[r - 1][fm - 1] = segment.name
    return SegmentMap(
        descriptions={segment.name: segment.description for segment in spec.segments},
        fm_rounding=spec.fm_rounding,
        _grid=tuple(tuple(row) for row in grid),
    )
