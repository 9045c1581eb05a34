"""Features of one normalised text: sparse n-grams and a few dense lexicon scores.

Chinese: character 1-3-grams (with start/end marks). English: word unigrams, with the three
words after a negator marked ``¬`` ("not happy" -> ``¬happy``), and word bigrams. Both get the
same dense block from the lexicon layer: the positive and the negative mass after negation and
degree words, whether the text asks a question, its exclamations, and how mixed it is (thanks
in a complaint).

The lexicon layer reads a text left to right, longest entry first: a negator flips the next
sentiment word (and damps it: 不好 is milder than 差), a degree word scales it (非常, very), and
the scope ends at punctuation or after a few unmatched characters/words. After a contrast word
(但是, but) the rest counts 1.5 times and what came before half.
"""

from __future__ import annotations

import re
from itertools import pairwise

from scorers.sentiment._lexicon import lexicon

__all__ = [
    "DENSE",
    "NEGATED_NEGATIVE",
    "NEGATED_POSITIVE",
    "en_features",
    "zh_features",
    "zh_marked",
]

#: Names of the dense features, in order.
DENSE = ("positive", "negative", "question", "exclamation", "mixed")
#: Markers that stand for a negated sentiment word and its negator (没失望, not happy).
NEGATED_NEGATIVE, NEGATED_POSITIVE = "\x04", "\x05"

_FLIP = -0.7  # a negated sentiment word: opposite sign, damped
_NEG_REACH = 4  # characters (zh) / words (en) a negator reaches over
_BREAKS = frozenset(",.!?;:~\n")
_CONTRAST = frozenset({"但是", "但", "可是", "不过", "却", "然而", "but", "however", "though"})
_ZH_QUESTION = re.compile(
    r"\?|吗|请问|怎么|如何|能否|是否|可否|多久|多少|什么时候|哪里|哪个|为什么|几天"
    r"|有没有|是不是|能不能|可不可以|会不会|要不要"
)
_EN_QUESTION = re.compile(
    r"\?|^(how|what|when|where|which|who|why|can|could|would|will|is|are|do|does|did)\b"
)
_EN_TOKEN = re.compile(
    r":-?\)|:-?\(|:'\(|\^_\^|>:\(|-_-|[a-z0-9]+(?:'[a-z]+)*|[!?,.;:]|[^\sa-z0-9]"
)
_ASCII_WORD = r"[a-z0-9]+(?:'[a-z]+)*"
_GOOD = {"好": 0.5, "真好": 0.6, "好好": 0.5}  # degree words that are praise on their own


def _entries(name: str) -> dict[str, tuple[int, float]]:
    found, emoji = lexicon(name), lexicon("emoji")
    kinds: dict[str, tuple[int, float]] = {w: (3, v) for w, v in emoji.words.items()}
    kinds.update({w: (3, v) for w, v in found.words.items()})
    kinds.update({w: (2, v) for w, v in found.degree.items()})
    kinds.update(dict.fromkeys(found.negators, (1, 0.0)))
    kinds.update(dict.fromkeys(_CONTRAST, (4, 0.0)))
    kinds.update(dict.fromkeys(found.neutral, (0, 0.0)))
    return kinds


_Trie = dict[str, "_Trie"]


def _trie_pattern(words: list[str]) -> str:
    """A regex matching the longest of ``words`` at a position (a trie, so it stays fast)."""
    trie: _Trie = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def pattern(node: _Trie) -> str:
        branches = [re.escape(ch) + pattern(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = "(?:" + "|".join(branches) + ")" if len(branches) > 1 else branches[0]
        return f"(?:{body})?" if "" in node else body

    return pattern(trie)


# word -> (kind, value); kinds: 0 neutral, 1 negator, 2 degree, 3 sentiment word, 4 contrast
_ZH = _entries("zh")
_EN = _entries("en")
_EN_NEGATORS = lexicon("en").negators
_ZH_TOKEN = re.compile(f"{_ASCII_WORD}|{_trie_pattern(list(_ZH))}|[,.!?;:~]")


class _Tally:
    """Running positive/negative mass with negation, degree and contrast state; remembers the
    spans (negator .. word) of negated sentiment words."""

    __slots__ = ("degree", "gap", "negated", "negative", "positive", "spans", "start", "weight")

    def __init__(self) -> None:
        self.positive = self.negative = 0.0
        self.negated, self.degree, self.gap, self.weight, self.start = False, 1.0, 0, 1.0, 0
        self.spans: list[tuple[int, int, str]] = []

    def reset(self) -> None:
        self.negated, self.degree, self.gap = False, 1.0, 0

    def skip(self, n: int) -> None:
        self.gap += n
        if self.gap > _NEG_REACH:
            self.reset()

    def take(self, kind: int, value: float, at: int, end: int) -> None:
        if kind == 1:
            if not self.negated:
                self.start = at
            self.negated, self.gap = not self.negated, 0
        elif kind == 2:
            self.degree, self.gap = self.degree * value, 0
        elif kind == 3:
            v = value * self.degree * self.weight
            if self.negated:
                v *= _FLIP
                self.spans.append(
                    (self.start, end, NEGATED_NEGATIVE if v > 0 else NEGATED_POSITIVE)
                )
            if v > 0:
                self.positive += v
            else:
                self.negative -= v
            self.reset()
        elif kind == 4:
            self.positive, self.negative, self.weight = self.positive / 2, self.negative / 2, 1.5
            self.reset()
        else:
            self.reset()

    def scores(self, question: bool, text: str) -> tuple[float, ...]:
        p, n = self.positive, self.negative
        exclaim = min(text.count("!"), 3) / 3
        return (p / (1 + p), n / (1 + n), 1.0 if question else 0.0, exclaim, min(p, n, 1.0))


def _masked(items: list[str], spans: list[tuple[int, int, str]]) -> list[str]:
    """``items`` with each negated span replaced by its one marker."""
    out: list[str] = []
    i = 0
    for start, end, marker in spans:
        out += items[i:start]
        out.append(marker)
        i = end
    out += items[i:]
    return out


def _en_kind(word: str) -> tuple[int, float] | None:
    found = _EN.get(word)
    if found is None and word.endswith("n't"):
        return (1, 0.0)
    return found


def _scan_zh(text: str) -> _Tally:
    tally = _Tally()
    matches = [(m.start(), m.end(), m.group()) for m in _ZH_TOKEN.finditer(text)]
    done = 0
    for k, (start, end, word) in enumerate(matches):
        if start > done:
            tally.skip(start - done)
        done = end
        if word in _BREAKS:
            tally.reset()
            continue
        found = _ZH.get(word)
        if found is None:  # an ASCII word that is not in the Chinese lexicon
            found = _en_kind(word)
            if found is None:
                tally.skip(1)
                continue
        elif word in _GOOD and found[0] == 2:
            following = _ZH.get(matches[k + 1][2]) if k + 1 < len(matches) else None
            if following is None or matches[k + 1][0] > end or following[0] not in (2, 3):
                found = (3, _GOOD[word])  # 越来越好, 修好了: 好 as a word
        tally.take(*found, start, end)
    return tally


def _scan_en(tokens: list[str]) -> _Tally:
    tally = _Tally()
    for i, token in enumerate(tokens):
        found = _en_kind(token)
        if found is not None:
            tally.take(*found, i, i + 1)
        elif token in _BREAKS:
            tally.reset()
        else:
            tally.skip(1)
    return tally


def zh_marked(text: str) -> tuple[str, tuple[float, ...]]:
    """A normalised text with start/end marks and each negated sentiment word with its negator
    as one marker character (what the n-grams are taken from), and the dense block."""
    tally = _scan_zh(text)
    question = _ZH_QUESTION.search(text) is not None
    body = "".join(_masked(list(text), tally.spans)) if tally.spans else text
    return f"\x02{body}\x03", tally.scores(question, text)


def zh_features(text: str) -> tuple[list[str], tuple[float, ...]]:
    """Character 1-3-grams of :func:`zh_marked` and the dense block (:data:`DENSE`)."""
    t, dense = zh_marked(text)
    n = len(t)
    grams = list(t)
    grams += [t[i : i + 2] for i in range(n - 1)]
    grams += [t[i : i + 3] for i in range(n - 2)]
    return grams, dense


def en_features(text: str) -> tuple[list[str], tuple[float, ...]]:
    """Word unigrams and bigrams of a normalised text (each negated sentiment word with its
    negator is one marker token; the other words a negator reaches are marked ``¬``) and the
    dense block (:data:`DENSE`)."""
    tokens = _EN_TOKEN.findall(text)
    tally = _scan_en(tokens)
    question = _EN_QUESTION.search(text) is not None
    tokens = _masked(tokens, tally.spans)
    grams: list[str] = []
    reach = 0
    for token in tokens:
        if token in _BREAKS:
            reach = 0
            if token in "!?":
                grams.append(token)
            continue
        grams.append(f"¬{token}" if reach > 0 else token)
        reach -= 1
        if token in _EN_NEGATORS or token.endswith("n't"):
            reach = 3
    padded = ["\x02", *tokens, "\x03"]
    grams += [f"{a} {b}" for a, b in pairwise(padded)]
    return grams, tally.scores(question, text)
