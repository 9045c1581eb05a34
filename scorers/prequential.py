"""Exact test-then-train metrics of a binary classifier, cumulative and over a sliding window.

Each example is scored *before* the model learns it (prequential evaluation), and
:class:`PrequentialMetrics` is told the prediction and the label. AUC is exact, not river's
binned approximation: positives' and negatives' scores are kept in sorted lists and the number
of correctly ordered (positive, negative) pairs is maintained in O(log n) per update, as an
integer count of half-pairs so no floating error builds up. It equals
``sklearn.metrics.roc_auc_score`` with ties counted as 1/2. Log loss clips p to
[1e-15, 1 - 1e-15] (sklearn >= 1.6 clips to its dtype's machine epsilon instead, so the two
agree on predictions already inside that range).

Examples
--------
>>> metrics = PrequentialMetrics(window=2)
>>> for p, y in [(0.9, 1), (0.2, 0), (0.4, 1), (0.4, 0)]:
...     metrics.update(p, y)
>>> snap = metrics.snapshot()
>>> snap["auc"]  # pairs: (0.9>0.2), (0.9>0.4), (0.4>0.2), (0.4=0.4 -> 1/2); 3.5 / 4
0.875
>>> snap["window_n"], snap["window_auc"]  # the last two: a tie
(2, 0.5)
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from sortedcontainers import SortedList

from crm_core.errors import ModelError

__all__ = ["PrequentialMetrics", "log_loss_one"]

_EPS = 1e-15  # log loss clips p to [eps, 1 - eps], as sklearn does


def log_loss_one(p: float, y: int) -> float:
    """The log loss of predicting ``p`` for label ``y`` (``p`` clipped as sklearn does).

    >>> round(log_loss_one(0.8, 1), 4), round(log_loss_one(0.8, 0), 4)
    (0.2231, 1.6094)
    """
    q = min(max(p, _EPS), 1.0 - _EPS)
    return -math.log(q) if y else -math.log1p(-q)


class _PairCounter:
    """Positives' and negatives' scores in sorted lists, and twice the concordant-pair count.

    ``twice_concordant`` counts a correctly ordered pair as 2 and a tie as 1, so it stays an
    exact integer.
    """

    def __init__(self) -> None:
        self.pos: SortedList = SortedList()
        self.neg: SortedList = SortedList()
        self.twice_concordant = 0

    def _pairs(self, p: float, y: int) -> int:
        """Twice the concordant pairs ``(p, y)`` forms with the examples held now."""
        other = self.neg if y else self.pos
        lo = int(other.bisect_left(p))
        hi = int(other.bisect_right(p))
        beaten = lo if y else len(other) - hi
        return 2 * beaten + (hi - lo)

    def add(self, p: float, y: int) -> None:
        self.twice_concordant += self._pairs(p, y)
        (self.pos if y else self.neg).add(p)

    def remove(self, p: float, y: int) -> None:
        (self.pos if y else self.neg).remove(p)
        self.twice_concordant -= self._pairs(p, y)

    def auc(self) -> float | None:
        n_pos, n_neg = len(self.pos), len(self.neg)
        if n_pos == 0 or n_neg == 0:
            return None
        return self.twice_concordant / (2 * n_pos * n_neg)

    def top_decile_recall(self) -> float | None:
        """Share of all positives among the ceil(10%) highest scores.

        Ties at the cut-off are resolved pessimistically: negatives rank ahead of positives with
        the same score, so a constant predictor earns no recall it did not rank for.
        """
        n_pos, n_neg = len(self.pos), len(self.neg)
        if n_pos == 0:
            return None
        scores = np.concatenate(
            [np.fromiter(self.neg, np.float64, n_neg), np.fromiter(self.pos, np.float64, n_pos)]
        )
        k = -(-(n_pos + n_neg) // 10)  # ceil(n / 10) in integers: 0.1 * 30 > 3.0 in floats
        # Stable sort on -p keeps the negatives (first in `scores`) ahead within a tie.
        top = np.argsort(-scores, kind="stable")[:k]
        return int(np.count_nonzero(top >= n_neg)) / n_pos


class PrequentialMetrics:
    """Test-then-train metrics of a binary classifier: cumulative and over a sliding window.

    Cumulative: AUC (exact), mean log loss and top-decile recall over every example so far.
    Window: the same over the last ``window`` examples. The cumulative sorted score lists are the
    only state that grows with the stream; the window holds at most ``window`` examples. The
    object pickles (it is checkpointed with the learner).
    """

    def __init__(self, window: int = 2000) -> None:
        if window < 1:
            raise ModelError(f"window={window!r} must be >= 1.")
        self.window = window
        self._all = _PairCounter()
        self._loss_sum = 0.0
        self._recent: deque[tuple[float, int]] = deque()
        self._recent_pairs = _PairCounter()

    def update(self, p: float, y: int) -> None:
        """Record one example: ``p`` = predicted P(y=1) made BEFORE learning it, ``y`` in {0, 1}."""
        if y not in (0, 1):
            raise ModelError(f"label must be 0 or 1, got {y!r}.")
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ModelError(f"prediction must be a probability in [0, 1], got {p!r}.")
        p, y = float(p), int(y)
        self._all.add(p, y)
        self._loss_sum += log_loss_one(p, y)
        self._recent.append((p, y))
        self._recent_pairs.add(p, y)
        if len(self._recent) > self.window:
            old_p, old_y = self._recent.popleft()
            self._recent_pairs.remove(old_p, old_y)

    @property
    def n(self) -> int:
        """Examples recorded so far."""
        return len(self._all.pos) + len(self._all.neg)

    def snapshot(self) -> dict[str, float | int | None]:
        """The current metrics; AUC is None while only one class has been seen, recall while no
        positive has, log loss while nothing has."""
        n = self.n
        window_n = len(self._recent)
        window_loss = None
        if window_n:
            losses = [log_loss_one(p, y) for p, y in self._recent]
            window_loss = math.fsum(losses) / window_n
        return {
            "n": n,
            "positives": len(self._all.pos),
            "auc": self._all.auc(),
            "log_loss": self._loss_sum / n if n else None,
            "top_decile_recall": self._all.top_decile_recall(),
            "window_n": window_n,
            "window_auc": self._recent_pairs.auc(),
            "window_log_loss": window_loss,
            "window_top_decile_recall": self._recent_pairs.top_decile_recall(),
        }
