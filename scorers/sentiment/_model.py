"""The shipped linear models: one per language, three classes, read from ``<lang>.npz``.

A model is a vocabulary of n-grams, a weight row per n-gram and per dense feature, and a bias
(:mod:`scorers.sentiment.train` writes them). Scoring a batch builds one sparse matrix of
binary n-gram indicators, so the per-text cost is the n-gram extraction in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from io import BytesIO
from itertools import repeat

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

from crm_core.errors import ModelError
from scorers.sentiment._chargrams import CharGrams
from scorers.sentiment._features import DENSE, en_features, zh_features, zh_marked

__all__ = ["LABELS", "Model", "featurizer", "load"]

#: Class order of the models' outputs.
LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")


def featurizer(lang: str) -> Callable[[str], tuple[list[str], tuple[float, ...]]]:
    """The feature extractor (n-grams, dense block) of a language ("zh" or "en")."""
    return zh_features if lang == "zh" else en_features


@dataclass(frozen=True)
class Model:
    """A fitted linear model over n-gram indicators and the dense lexicon block."""

    lang: str
    vocabulary: dict[str, int]
    sparse: NDArray[np.float64]  # (n-grams, 3)
    dense: NDArray[np.float64]  # (dense features, 3)
    bias: NDArray[np.float64]  # (3,)

    @cached_property
    def _chargrams(self) -> CharGrams:
        return CharGrams(self.vocabulary)

    def probabilities(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Class probabilities (rows: texts; columns: :data:`LABELS`) of normalised texts."""
        dense = np.empty((len(texts), len(DENSE)))
        if self.lang == "zh":  # n-grams as integer keys, the whole batch in numpy
            marked = []
            for row, text in enumerate(texts):
                t, dense[row] = zh_marked(text)
                marked.append(t)
            x = self._chargrams.indicators(marked)
        else:
            index = self.vocabulary.get
            indices: list[int] = []
            indptr = [0]
            for row, text in enumerate(texts):
                grams, dense[row] = en_features(text)
                found = set(map(index, grams, repeat(-1)))
                found.discard(-1)
                indices += found
                indptr.append(len(indices))
            ones = np.ones(len(indices))
            x = csr_matrix((ones, indices, indptr), shape=(len(texts), self.sparse.shape[0]))
        logits = x @ self.sparse + dense @ self.dense + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float64)

    def to_bytes(self) -> bytes:
        """The model as a compressed ``.npz`` (what :func:`load` reads)."""
        buffer = BytesIO()
        words = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        np.savez_compressed(
            buffer,
            vocabulary=np.array("\n".join(words)),
            sparse=self.sparse.astype(np.float32),
            dense=self.dense.astype(np.float32),
            bias=self.bias.astype(np.float32),
        )
        return buffer.getvalue()


@cache
def load(lang: str) -> Model:
    """The shipped model of ``lang`` ("zh" or "en")."""
    source = resources.files("scorers.sentiment").joinpath(f"{lang}.npz")
    try:
        with source.open("rb") as handle, np.load(handle) as data:
            words = str(data["vocabulary"]).split("\n")
            return Model(
                lang,
                {w: i for i, w in enumerate(words)},
                data["sparse"].astype(np.float64),
                data["dense"].astype(np.float64),
                data["bias"].astype(np.float64),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(
            f"the {lang} sentiment model {source} is missing or damaged ({exc}); "
            "reinstall crm-scoring or rebuild it with `python -m scorers.sentiment.train`"
        ) from exc
