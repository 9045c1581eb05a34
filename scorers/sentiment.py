"""Sentiment of support-ticket text, from VADER (the lexicon ships inside the package).

VADER is a rule-based English sentiment model: no download at run time, ~15-130 µs a text.
The compound score is in [-1, 1]; below -0.05 counts as negative (VADER's own convention).
Repeated texts (templates, canned replies) are cached.

>>> compound("Thank you, that was quick and very helpful!") > 0.5
True
>>> compound("The item broke after two days. Poor quality.") < -0.05
True
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

__all__ = ["NEGATIVE_BELOW", "compound"]

#: Compound scores under this are negative.
NEGATIVE_BELOW = -0.05


@cache
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@lru_cache(maxsize=8192)
def compound(text: str) -> float:
    """VADER's compound sentiment of ``text``, rounded to 4 decimals ([-1, 1]; 0 for none)."""
    if not text.strip():
        return 0.0
    return round(float(_analyzer().polarity_scores(text)["compound"]), 4)
