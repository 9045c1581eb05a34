"""The lexicons of the rule layer, read from the text files shipped beside this module.

``lexicon_zh.txt`` (Chinese), ``lexicon_en.txt`` (English, on top of VADER's word valences:
MIT, shipped by ``vaderSentiment``, scaled to [-1, 1]) and ``lexicon_emoji.txt`` (both
languages) were written for this project. Each line is ``kind [value]: entries``, kinds
``negator``, ``degree`` (a multiplier), ``neutral`` (compounds without sentiment) and ``word``
(a valence in [-1, 1]).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import NamedTuple

__all__ = ["Lexicon", "lexicon"]


class Lexicon(NamedTuple):
    """Negators, degree words, neutral compounds and word valences of one language."""

    negators: frozenset[str]
    degree: dict[str, float]
    neutral: frozenset[str]
    words: dict[str, float]


def _parse(name: str) -> Lexicon:
    source = resources.files("scorers.sentiment").joinpath(f"lexicon_{name}.txt")
    negators: set[str] = set()
    neutral: set[str] = set()
    degree: dict[str, float] = {}
    words: dict[str, float] = {}
    for line in source.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        head, _, entries = line.partition(":")
        kind, _, value = head.partition(" ")
        if kind == "negator":
            negators.update(entries.split())
        elif kind == "neutral":
            neutral.update(entries.split())
        else:
            (degree if kind == "degree" else words).update(
                dict.fromkeys(entries.split(), float(value))
            )
    return Lexicon(frozenset(negators), degree, frozenset(neutral), words)


def _vader() -> dict[str, float]:
    source = resources.files("vaderSentiment").joinpath("vader_lexicon.txt")
    table: dict[str, float] = {}
    for line in source.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            table[fields[0]] = float(fields[1]) / 4.0
    return table


@cache
def lexicon(name: str) -> Lexicon:
    """The lexicon ``name``: "zh", "en" (VADER's valences with this project's on top) or
    "emoji"."""
    parsed = _parse(name)
    if name == "en":
        return parsed._replace(words={**_vader(), **parsed.words})
    return parsed
