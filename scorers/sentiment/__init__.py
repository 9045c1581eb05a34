"""Sentiment of support-ticket text, Chinese and English, three classes.

A text with a CJK ideograph goes to the Chinese model, any other to the English one. Chinese is
normalised to simplified characters first (OpenCC's character table), so traditional text
scores the same. Each model is a linear model shipped in the package (``zh.npz``, ``en.npz``,
built by ``python -m scorers.sentiment.train``) over n-grams and a lexicon layer that handles
negation (不, 没有, 并不, not, never), degree words (非常, 有点, very, slightly) and emoji.

The label is the most probable class; the score is P(positive) - P(negative), in [-1, 1].
Repeated texts (templates, canned replies) are cached.

>>> score("Thank you, that was quick and very helpful!").label
'positive'
>>> score("快递一个星期了还没到，太慢了").label
'negative'
>>> score("請問可以開發票嗎？")
Sentiment(lang='zh', label='neutral', score=...)
>>> [s.label for s in score_many(["不好用", "并不差", "Where is my parcel?"])]
['negative', 'positive', 'neutral']
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from scorers.sentiment._model import LABELS, load
from scorers.sentiment._normalize import is_chinese, normalize

__all__ = ["LABELS", "Sentiment", "score", "score_many"]


class Sentiment(NamedTuple):
    """The sentiment of one text: its language, class and score."""

    lang: str  # "zh" or "en"
    label: str  # "negative", "neutral" or "positive"
    score: float  # P(positive) - P(negative), in [-1, 1]; 4 decimals


def score_many(texts: Sequence[str]) -> list[Sentiment]:
    """The sentiment of each text, in order (blank texts are neutral with score 0)."""
    out: list[Sentiment | None] = [None] * len(texts)
    groups: dict[str, tuple[list[int], list[str]]] = {"zh": ([], []), "en": ([], [])}
    for i, text in enumerate(texts):
        lang = "zh" if is_chinese(text) else "en"
        clean = normalize(text)
        if not clean:
            out[i] = Sentiment(lang, "neutral", 0.0)
            continue
        rows, cleaned = groups[lang]
        rows.append(i)
        cleaned.append(clean)
    for lang, (rows, cleaned) in groups.items():
        if not rows:
            continue
        probabilities = load(lang).probabilities(cleaned)
        for i, p in zip(rows, probabilities.tolist(), strict=True):
            label = LABELS[max(range(3), key=p.__getitem__)]
            out[i] = Sentiment(lang, label, round(p[2] - p[0], 4) + 0.0)
    return [s for s in out if s is not None]


@lru_cache(maxsize=8192)
def score(text: str) -> Sentiment:
    """The sentiment of one text (see :func:`score_many`)."""
    return score_many([text])[0]
