"""Character 1-3-gram indicators of many texts at once, with integer keys in numpy.

An n-gram's key packs its characters' code points (+1, so no key is 0) 21 bits each: one
character stays under 2**21, two under 2**42, three under 2**63, so the three lengths never
collide and a batch needs no Python string per n-gram. This is what makes the Chinese model
fast; :func:`scorers.sentiment._features.zh_features` gives the same n-grams as strings.

>>> grams = CharGrams({"好": 0, "好评": 1, "差评": 2})
>>> grams.indicators(["\\x02好评\\x03", "差评差评"]).toarray().tolist()
[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

__all__ = ["CharGrams", "key_of"]

_BITS = 21


def key_of(gram: str) -> int:
    """The integer key of a 1-3-character n-gram."""
    key = 0
    for ch in gram:
        key = (key << _BITS) | (ord(ch) + 1)
    return key


class CharGrams:
    """Maps the character n-grams of texts to a vocabulary's columns."""

    def __init__(self, vocabulary: dict[str, int]) -> None:
        pairs = sorted((key_of(g), i) for g, i in vocabulary.items() if 1 <= len(g) <= 3)
        self.keys: NDArray[np.int64] = np.array([k for k, _ in pairs], dtype=np.int64)
        self.columns: NDArray[np.int64] = np.array([i for _, i in pairs], dtype=np.int64)
        self.width = len(vocabulary)

    def indicators(self, texts: list[str]) -> csr_matrix:
        """Binary (texts x vocabulary) matrix: which vocabulary n-grams each text has."""
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        joined = "".join(texts).encode("utf-32-le")
        codes = np.frombuffer(joined, dtype=np.uint32).astype(np.int64) + 1
        row = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        two = row[:-1] == row[1:]
        three = row[:-2] == row[2:]
        keys = np.concatenate(
            [
                codes,
                ((codes[:-1] << _BITS) | codes[1:])[two],
                ((codes[:-2] << 2 * _BITS) | (codes[1:-1] << _BITS) | codes[2:])[three],
            ]
        )
        rows = np.concatenate([row, row[:-1][two], row[:-2][three]])
        if not len(self.keys):
            return csr_matrix((len(texts), self.width))
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = self.keys[at] == keys
        x = csr_matrix(
            (np.ones(int(hit.sum())), (rows[hit], self.columns[at[hit]])),
            shape=(len(texts), self.width),
        )
        x.data[:] = 1.0  # duplicates were summed: indicators, not counts
        return x
