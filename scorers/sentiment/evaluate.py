"""Macro-F1 and per-class F1 of the shipped models on labelled JSONL files.

    python -m scorers.sentiment.evaluate tests/data/sentiment/eval_zh.jsonl \
        tests/data/sentiment/eval_en.jsonl

Each line is ``{"text": ..., "label": "negative|neutral|positive"}``. Prints one JSON object
per file: its size, macro-F1, F1 per class and the confusion matrix (rows: truth).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from scorers.sentiment import LABELS, score_many

__all__ = ["quality", "read_labelled"]


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """``(text, label)`` pairs of a labelled JSONL file."""
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [(str(row["text"]), str(row["label"])) for row in rows]


def quality(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Macro-F1, F1 per class and the confusion matrix of the models on ``pairs``."""
    predicted = [s.label for s in score_many([text for text, _ in pairs])]
    truth = [label for _, label in pairs]
    confusion = {t: dict.fromkeys(LABELS, 0) for t in LABELS}
    for t, p in zip(truth, predicted, strict=True):
        confusion[t][p] += 1
    f1 = {}
    for c in LABELS:
        tp = confusion[c][c]
        fp = sum(confusion[t][c] for t in LABELS) - tp
        fn = sum(confusion[c].values()) - tp
        f1[c] = round(2 * tp / (2 * tp + fp + fn), 4) if tp else 0.0
    return {
        "n": len(pairs),
        "macro_f1": round(sum(f1.values()) / len(LABELS), 4),
        "f1": f1,
        "confusion": confusion,
    }


def main() -> None:
    """Command line: one JSON line per labelled file."""
    for name in sys.argv[1:]:
        result = {"file": name, **quality(read_labelled(Path(name)))}
        sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
