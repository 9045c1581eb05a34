"""Churn probability at a checkpoint, the ``churn_risk`` alert rule, and training examples.

The score comes from the newest published churn model once it has learned from at least
``min_examples`` labelled examples; before that (cold start) it falls back to
``1 - P(alive)``, and every score names what produced it (``churn_model_version``: the model
version, or ``"fallback:p_alive"``). The alert fires when the probability crosses
``alert_threshold`` upward and re-arms only once it falls under ``alert_reset`` (hysteresis), so
a customer hovering around the threshold does not flap.

Examples
--------
>>> churn = ChurnScoring(ChurnPolicy(alert_threshold=0.7, alert_reset=0.5))
>>> churn.score([{"p_alive": 0.2}], [0.2])[0][:2]
(0.8, 'fallback:p_alive')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import NamedTuple

import numpy as np

from schemas.fast import encode_training_example
from schemas.outputs import AlertType, Severity
from scorers.alerts import AlertDraft
from scorers.churn_features import FEATURE_NAMES, present, reason_text
from scorers.churn_model import ChurnScorer
from scorers.clusters import ClusterAssigner

__all__ = ["FALLBACK_VERSION", "ChurnModelRef", "ChurnPolicy", "ChurnScore", "ChurnScoring"]

#: ``churn_model_version`` of a score from the cold-start fallback.
FALLBACK_VERSION = "fallback:p_alive"


@dataclass(frozen=True, slots=True)
class ChurnPolicy:
    """Thresholds of churn scoring (from settings)."""

    alert_threshold: float = 0.7
    alert_reset: float = 0.5
    min_examples: int = 200
    horizon_days: float = 90.0

    def __post_init__(self) -> None:
        if not 0 < self.alert_reset < self.alert_threshold < 1:
            raise ValueError(
                f"need 0 < alert_reset ({self.alert_reset}) < alert_threshold "
                f"({self.alert_threshold}) < 1"
            )


class ChurnModelRef(NamedTuple):
    """A published churn model: its registry version and the scorer."""

    version: str
    scorer: ChurnScorer


class ChurnScore(NamedTuple):
    """One checkpoint's churn probability, what produced it, and the top reasons (only for
    scores at or above ``alert_reset``, where someone will read them)."""

    probability: float | None
    version: str | None
    reasons: list[str]


_UNSCORED = ChurnScore(None, None, [])


class ChurnScoring:
    """Scores feature rows and applies the alert rule; ``model`` is hot-swapped by the caller."""

    def __init__(self, policy: ChurnPolicy, model: ChurnModelRef | None = None) -> None:
        self.policy = policy
        self.model = model
        #: The published segmentation (scorers.clusters), hot-swapped like the model.
        self.clusters: ClusterAssigner | None = None

    @property
    def active_model(self) -> ChurnModelRef | None:
        """The model scores come from, or None while in the cold-start fallback."""
        model = self.model
        if model is None or model.scorer.n_examples < self.policy.min_examples:
            return None
        return model

    def score(
        self, rows: Sequence[Mapping[str, float] | None], p_alive: Sequence[float | None]
    ) -> list[ChurnScore]:
        """Churn scores of feature rows (None: a customer without orders, not scored)."""
        model = self.active_model
        if model is not None:
            present = [(i, row) for i, row in enumerate(rows) if row is not None]
            out = [_UNSCORED] * len(rows)
            scores = self.score_rows([row for _, row in present])
            for (i, _), score in zip(present, scores, strict=True):
                out[i] = score
            return out
        return [
            _UNSCORED if row is None else self.fallback(alive, partial(_same, row))
            for row, alive in zip(rows, p_alive, strict=True)
        ]

    def score_rows(self, rows: Sequence[Mapping[str, float]]) -> list[ChurnScore]:
        """Scores of the active model (call only when :attr:`active_model` is set)."""
        model = self.active_model
        if model is None:
            raise ValueError("score_rows needs an active churn model; use fallback()")
        probabilities = model.scorer.score_many(rows)
        reset = self.policy.alert_reset
        return [
            ChurnScore(p, model.version, self._reasons(model, row) if p >= reset else [])
            for p, row in zip(probabilities, rows, strict=True)
        ]

    def score_values(self, values: Sequence[Sequence[float]]) -> list[ChurnScore]:
        """:meth:`score_rows` of rows given as values in ``FEATURE_NAMES`` order: one matrix,
        the probabilities and the reasons' contributions vectorised (the worker's path)."""
        model = self.active_model
        if model is None:
            raise ValueError("score_values needs an active churn model; use fallback()")
        if not values:
            return []
        matrix = np.asarray(values, dtype=np.float64)
        probabilities = model.scorer.score_matrix(matrix, FEATURE_NAMES).tolist()
        needing = [i for i, p in enumerate(probabilities) if p >= self.policy.alert_reset]
        reasons: dict[int, list[str]] = {}
        if needing:
            contributions = model.scorer.contributions_matrix(matrix[needing], FEATURE_NAMES)
            for i, row_contributions in zip(needing, contributions.tolist(), strict=True):
                row = present(values[i])
                top = sorted(
                    ((c, name) for name, c in zip(FEATURE_NAMES, row_contributions, strict=True)
                     if c > 0.0),
                    key=lambda item: (-item[0], item[1]),
                )[:5]  # fmt: skip
                reasons[i] = _words([(name, c) for c, name in top], row)
        return [
            ChurnScore(p, model.version, reasons.get(i, [])) for i, p in enumerate(probabilities)
        ]

    def fallback(self, p_alive: float | None, row: Callable[[], Mapping[str, float]]) -> ChurnScore:
        """The cold-start score ``1 - P(alive)``; ``row`` builds the features only when the
        score needs reasons."""
        if p_alive is None:
            return _UNSCORED
        p = 1.0 - p_alive
        reasons = _fallback_reasons(row()) if p >= self.policy.alert_reset else []
        return ChurnScore(p, FALLBACK_VERSION, reasons)

    def alert(
        self, customer_id: str, score: ChurnScore, alerted: bool, at: int
    ) -> tuple[bool, AlertDraft | None]:
        """The hysteresis rule at one checkpoint: (alert open after it, the alert to raise)."""
        p = score.probability
        if p is None:
            return alerted, None
        if alerted:
            return p >= self.policy.alert_reset, None
        if p < self.policy.alert_threshold:
            return False, None
        severity = (
            Severity.CRITICAL if p >= (1 + self.policy.alert_threshold) / 2 else Severity.WARNING
        )
        draft = AlertDraft(
            AlertType.CHURN_RISK,
            severity,
            f"churn_risk:{customer_id}:{at}",
            score.reasons or [f"churn probability {p:.0%}"],
            {
                "churn_probability": p,
                "threshold": self.policy.alert_threshold,
                "churn_model_version": score.version,
            },
        )
        return True, draft

    def example(
        self,
        customer_id: str,
        snapshot_at: int,
        label: int,
        resolved_at: int,
        features: Sequence[float | None],
    ) -> bytes:
        """The ``crm.training`` message of one resolved snapshot."""
        return encode_training_example(
            customer_id=customer_id,
            snapshot_at=datetime.fromtimestamp(snapshot_at, UTC),
            resolved_at=datetime.fromtimestamp(resolved_at, UTC),
            horizon_days=float(self.policy.horizon_days),
            label=1 if label else 0,
            features=present(features),
            idempotency_key=f"churn:{customer_id}:{snapshot_at}",
        )

    @staticmethod
    def _reasons(model: ChurnModelRef, row: Mapping[str, float]) -> list[str]:
        return _words(model.scorer.top_reasons(row, k=5), row)


def _words(top: Sequence[tuple[str, float]], row: Mapping[str, float]) -> list[str]:
    """The features that pushed a score up most, in words; contributions under a tenth of the
    largest one are noise, not reasons."""
    floor = 0.1 * top[0][1] if top else 0.0
    texts: list[str] = []
    for name, contribution in top:
        text = reason_text(name, row)
        if contribution >= floor and text not in texts:  # recency and its ratio: one text
            texts.append(text)
    return texts[:3]


def _same(row: Mapping[str, float]) -> Mapping[str, float]:
    return row


def _fallback_reasons(row: Mapping[str, float]) -> list[str]:
    reasons = [reason_text("recency_days", row), reason_text("p_alive", row)]
    for name in ("complaints_30d", "open_rate_drop", "unsubscribes_30d"):
        if row.get(name, 0.0) >= (0.5 if name != "open_rate_drop" else 0.3):
            reasons.append(reason_text(name, row))
    return reasons[:3]
