"""Named RFM segments: the shipped grid is a partition, and edited files are checked."""

from __future__ import annotations

import doctest
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

import scorers.segments
from crm_core.errors import ConfigError
from scorers.segments import SCORES, load_segments

EXPECTED = [
    "Champions",
    "Loyal",
    "Potential Loyalist",
    "Recent",
    "Promising",
    "Needing Attention",
    "About To Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
]


def shipped() -> dict[str, Any]:
    text = resources.files("scorers").joinpath("segments.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "segments.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def segment(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["segments"] if s["name"] == name)
    return found


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(scorers.segments)
    assert failures == 0
    assert tried > 0


def test_shipped_file_loads_with_the_eleven_classic_segments() -> None:
    segments = load_segments()
    assert list(segments.names) == EXPECTED
    assert segments.fm_rounding == "floor"
    assert all(segments.descriptions[name] for name in segments.names)


def test_every_cell_is_in_exactly_one_rectangle_of_the_shipped_file() -> None:
    owners: Counter[tuple[int, int]] = Counter()
    owner_name: dict[tuple[int, int], str] = {}
    for spec in shipped()["segments"]:
        for rect in spec["cells"]:
            for r in range(rect["r"][0], rect["r"][1] + 1):
                for fm in range(rect["fm"][0], rect["fm"][1] + 1):
                    owners[(r, fm)] += 1
                    owner_name[(r, fm)] = spec["name"]
    assert set(owners) == {(r, fm) for r in SCORES for fm in SCORES}
    assert set(owners.values()) == {1}
    segments = load_segments()
    for (r, fm), name in owner_name.items():
        assert segments.segment_for_cell(r, fm) == name
    assert set(owner_name.values()) == set(EXPECTED)  # no segment is empty


def test_every_score_triple_maps_to_a_named_segment() -> None:
    segments = load_segments()
    seen = {segments.segment_for(r, f, m) for r in SCORES for f in SCORES for m in SCORES}
    assert seen == set(EXPECTED)


@pytest.mark.parametrize(
    ("r", "f", "m", "expected"),
    [
        (5, 5, 5, "Champions"),
        (5, 4, 4, "Champions"),
        (5, 4, 3, "Loyal"),  # FM = floor(3.5) = 3
        (5, 1, 1, "Recent"),
        (4, 1, 2, "Promising"),
        (3, 3, 3, "Needing Attention"),
        (1, 5, 5, "Can't Lose Them"),
        (2, 5, 5, "At Risk"),
        (1, 1, 1, "Lost"),
        (2, 1, 1, "Hibernating"),
    ],
)
def test_known_customers(r: int, f: int, m: int, expected: str) -> None:
    assert load_segments().segment_for(r, f, m) == expected


def test_fm_rounding_rules(tmp_path: Path) -> None:
    floor = load_segments()
    data = shipped()
    data["fm_rounding"] = "half_up"
    half_up = load_segments(write(tmp_path, data))
    for f in SCORES:
        for m in SCORES:
            assert floor.fm(f, m) == (f + m) // 2
            assert half_up.fm(f, m) == (f + m + 1) // 2
    assert half_up.segment_for(5, 4, 3) == "Champions"


@pytest.mark.parametrize("bad", [0, 6, 2.5, True, -1])
def test_scores_outside_1_to_5_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="from 1 to 5"):
        load_segments().segment_for(bad, 3, 3)


def test_a_gap_is_refused_naming_the_cell(tmp_path: Path) -> None:
    data = shipped()
    data["segments"] = [s for s in data["segments"] if s["name"] != "Lost"]
    with pytest.raises(ConfigError, match=r"no segment covers \(R=1, FM=1\)") as info:
        load_segments(write(tmp_path, data))
    assert str(tmp_path) in str(info.value)
    assert "exactly one segment" in str(info.value)


def test_several_gaps_are_all_named(tmp_path: Path) -> None:
    data = shipped()
    segment(data, "Champions")["cells"] = [{"r": [5, 5], "fm": [5, 5]}]
    with pytest.raises(ConfigError) as info:
        load_segments(write(tmp_path, data))
    message = str(info.value)
    for cell in ("(R=4, FM=4)", "(R=4, FM=5)", "(R=5, FM=4)"):
        assert cell in message
    assert "(R=5, FM=5)" not in message


def test_an_overlap_is_refused_naming_the_cell_and_segments(tmp_path: Path) -> None:
    data = shipped()
    segment(data, "Lost")["cells"] = [{"r": [1, 1], "fm": [1, 2]}]
    with pytest.raises(ConfigError, match=r"\(R=1, FM=2\) is in Hibernating and Lost"):
        load_segments(write(tmp_path, data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["segments"].append(dict(d["segments"][0], cells=[])), "at least 1"),
        (lambda d: segment(d, "Lost").update(cells=[{"r": [2, 1], "fm": [1, 1]}]), "low > high"),
        (lambda d: segment(d, "Lost").update(cells=[{"r": [1, 6], "fm": [1, 1]}]), "less than"),
        (lambda d: segment(d, "Lost").update(name="Hibernating"), "repeated: Hibernating"),
        (lambda d: d.update(fm_rounding="ceil"), "fm_rounding"),
        (lambda d: d.update(colour="red"), "colour"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, edit: Any, message: str) -> None:
    data = shipped()
    edit(data)
    with pytest.raises(ConfigError, match=message):
        load_segments(write(tmp_path, data))


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_segments(tmp_path / "missing.yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("segments: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_segments(path)
