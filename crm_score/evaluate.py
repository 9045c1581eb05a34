"""``crm-score evaluate``: the online churn model's quality next to a batch baseline.

An event file is replayed through the worker's scoring code (:mod:`crm_score.evaluate_replay`),
which emits the labelled training examples in the order their labels resolve. Both learners see
the same examples and the same features (:data:`scorers.churn_features.FEATURE_NAMES`):

- **online**: :class:`scorers.learner.OnlineLearner` (what the learner worker runs), fed every
  example in emission order; each example's prediction is the one made before learning it
  (prequential).
- **batch**: ``HistGradientBoostingClassifier`` trained on the first 70 % of the examples by
  snapshot time and scored on the last 30 %.

Only snapshots whose whole horizon lies inside the history are evaluated: near the end of the
file only the snapshots a purchase labelled 0 have resolved, so keeping them would leave the
test set's tail all negatives. Training examples whose label was not known at the first test
snapshot are *purged*. ``purge="horizon"`` (the default) drops every example whose horizon had
not ended by then, whatever its label; ``purge="resolved"`` drops only those that resolved after
it, which keeps the negatives of the last horizon (a purchase resolved them early) and none of
its positives: that biases the training set against churn near the split (on a simulated year
of 5,000 customers it cost the batch model 0.13-0.19 AUC).

Both are scored on the same test set: ROC AUC, log loss and top-decile recall (the share of
positives among the ceil(10 %) highest predictions, ties ranked pessimistically as in
:class:`scorers.prequential.PrequentialMetrics`). The online prediction of a test example was made
when its label resolved, so the online learner has by then seen examples the batch model has
not: the comparison is "what the live model scored" against "a model retrained at the split".
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from crm_core.errors import ModelError
from crm_core.settings import Settings
from crm_score.evaluate_replay import ReplayedHistory, replay_history
from schemas import TrainingExample
from scorers.churn_features import FEATURE_NAMES
from scorers.learner import OnlineLearner
from scorers.prequential import PrequentialMetrics

__all__ = [
    "TRAIN_FRACTION",
    "EvaluationReport",
    "Purge",
    "Quality",
    "Split",
    "evaluate_history",
    "quality",
    "split",
]

#: Share of the examples (by snapshot time) the batch baseline trains on.
TRAIN_FRACTION = 0.7

Purge = Literal["horizon", "resolved"]
_SECOND = timedelta(seconds=1)  # a label is known the second after its horizon


@dataclass(frozen=True, slots=True)
class Quality:
    """A learner's predictions on the test set, scored."""

    auc: float | None
    log_loss: float | None
    top_decile_recall: float | None


def quality(labels: Sequence[int], predictions: Sequence[float]) -> Quality:
    """ROC AUC and log loss (sklearn) and top-decile recall of ``predictions``; AUC and log
    loss are None with a single class, recall without positives.

    >>> quality([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]).auc
    0.75
    """
    from sklearn.metrics import log_loss, roc_auc_score

    if not labels:
        return Quality(None, None, None)
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(predictions, dtype=np.float64)
    both = 0 < int(y.sum()) < len(y)
    metrics = PrequentialMetrics(window=len(y))
    for pi, yi in zip(p.tolist(), y.tolist(), strict=True):
        metrics.update(pi, yi)
    recall = metrics.snapshot()["top_decile_recall"]
    return Quality(
        auc=float(roc_auc_score(y, p)) if both else None,
        log_loss=float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        top_decile_recall=None if recall is None else float(recall),
    )


@dataclass(frozen=True, slots=True)
class Split:
    """The batch baseline's train and test sets (indices into the examples)."""

    train: list[int]
    test: list[int]
    purged: int
    incomplete: int  # examples left out: their horizon reaches past the history
    test_from: datetime  # the first test snapshot


def split(
    examples: Sequence[TrainingExample],
    history_end: datetime,
    *,
    purge: Purge = "horizon",
    train_fraction: float = TRAIN_FRACTION,
) -> Split:
    """The examples whose horizon ended by ``history_end``: the first ``train_fraction`` by
    (snapshot time, key) to train, the rest to test; training examples whose label was not known
    at the first test snapshot are purged (``purge``: see the module docstring)."""

    def known_by(example: TrainingExample, moment: datetime) -> bool:
        horizon = timedelta(days=example.horizon_days) + _SECOND
        return example.snapshot_at + horizon <= moment

    complete = [i for i, e in enumerate(examples) if known_by(e, history_end)]
    order = sorted(complete, key=lambda i: (examples[i].snapshot_at, examples[i].idempotency_key))
    cut = math.floor(train_fraction * len(order))
    if cut == 0 or cut == len(order):
        raise ModelError(f"{len(order)} labelled examples are too few to split; give more history")
    head, test = order[:cut], order[cut:]
    test_from = examples[test[0]].snapshot_at
    if purge == "horizon":
        train = [i for i in head if known_by(examples[i], test_from)]
    else:
        train = [i for i in head if examples[i].resolved_at <= test_from]
    return Split(train, test, len(head) - len(train), len(examples) - len(order), test_from)


def _matrix(examples: Sequence[TrainingExample], rows: Sequence[int]) -> Any:
    return np.array(
        [[examples[i].features.get(name, np.nan) for name in FEATURE_NAMES] for i in rows],
        dtype=np.float64,
    ).reshape(len(rows), len(FEATURE_NAMES))


@dataclass(slots=True)
class EvaluationReport:
    """One evaluation: sizes, the two learners on the same test set, and timings."""

    history: ReplayedHistory = field(repr=False)
    seed: int
    purge: Purge
    split: Split = field(repr=False)
    online: Quality
    batch: Quality
    online_prequential: dict[str, float | int | None]
    online_predictions: list[float] = field(repr=False)  # one per example, emission order
    batch_predictions: list[float] = field(repr=False)  # one per test example, split order
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def examples(self) -> list[TrainingExample]:
        """Every labelled example, in emission (label-resolution) order."""
        return self.history.examples

    @property
    def test_labels(self) -> list[int]:
        """Labels of the test set, in split order."""
        return [self.examples[i].label for i in self.split.test]

    @property
    def online_test_predictions(self) -> list[float]:
        """The online learner's prequential predictions of the test set, in split order."""
        return [self.online_predictions[i] for i in self.split.test]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-friendly values."""
        history, parsed = self.history, self.history.parsed
        examples = self.examples
        positives = sum(e.label for e in examples)
        auc_gap = None
        if self.online.auc is not None and self.batch.auc is not None:
            auc_gap = round(self.batch.auc - self.online.auc, 4)
        return {
            "events": len(parsed.items),
            "rejected": parsed.rejected,
            "duplicates": parsed.duplicates,
            "customers": history.customers,
            "first_event_at": datetime.fromtimestamp(parsed.first_at, UTC).isoformat(),
            "last_event_at": datetime.fromtimestamp(parsed.last_at, UTC).isoformat(),
            "fit_at": history.fit_at.isoformat(),
            "replayed_until": history.until.isoformat(),
            "horizon_days": examples[0].horizon_days if examples else None,
            "examples": len(examples),
            "positive_rate": positives / len(examples) if examples else None,
            "censored_snapshots": history.censored,
            "incomplete_horizon": self.split.incomplete,
            "train": len(self.split.train),
            "purged": self.split.purged,
            "purge": self.purge,
            "test": len(self.split.test),
            "test_from": self.split.test_from.isoformat(),
            "test_positive_rate": sum(self.test_labels) / len(self.split.test),
            "seed": self.seed,
            "online": _rounded(self.online),
            "batch": _rounded(self.batch),
            "auc_gap_batch_minus_online": auc_gap,
            "online_prequential": self.online_prequential,
            "probability_model": {
                "fitted_at": history.model.fitted_at.isoformat(),
                "customers": history.model.n_customers,
                "high_value_clv": history.model.high_value_clv,
            },
            "seconds": {name: round(s, 3) for name, s in self.seconds.items()},
            "microseconds_per_event": self.microseconds_per_event(),
            "wall_seconds": round(self.seconds.get("total", math.nan), 3),
        }

    def microseconds_per_event(self) -> dict[str, float | None]:
        """Reading and parsing, per line of the file (valid, rejected or duplicate), and the
        round (the worker's scoring: :class:`streams.round.scorer.RoundScorer`, profile folding
        included), per event replayed; None for a stage that was not timed."""
        parsed, seconds = self.history.parsed, self.seconds
        lines = len(parsed.items) + parsed.rejected + parsed.duplicates

        def per(stage: str, count: int) -> float | None:
            return round(seconds[stage] / count * 1e6, 2) if stage in seconds and count else None

        return {"parse": per("read", lines), "round": per("replay", len(parsed.items))}


def _rounded(q: Quality) -> dict[str, float | None]:
    return {
        "auc": None if q.auc is None else round(q.auc, 4),
        "log_loss": None if q.log_loss is None else round(q.log_loss, 4),
        "top_decile_recall": None if q.top_decile_recall is None else round(q.top_decile_recall, 4),
    }


def evaluate_history(
    events_path: Path,
    settings: Settings,
    *,
    fit_at: float = 0.3,
    seed: int = 0,
    now: datetime | None = None,
    purge: Purge = "horizon",
) -> EvaluationReport:
    """Replay ``events_path`` and compare the online learner with the batch baseline.

    ``fit_at``: where in the history's span the probability model and RFM boundaries are fitted.
    ``seed``: the batch model's random state. ``now``: see
    :func:`crm_score.evaluate_replay.replay_history`. ``purge``: see the module docstring.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    began = time.perf_counter()
    history = replay_history(events_path, settings, fit_at=fit_at, now=now)
    examples = history.examples
    seconds = dict(history.seconds)
    start = time.perf_counter()
    learner = OnlineLearner(settings.churn_model_kind, window=settings.learner_metrics_window)
    predictions: list[float] = []
    for example in examples:
        outcome = learner.learn_one(example.idempotency_key, example.features, example.label)
        if outcome.p is None:
            raise ModelError(f"example {example.idempotency_key} was emitted twice")
        predictions.append(outcome.p)
    seconds["online"] = time.perf_counter() - start

    start = time.perf_counter()
    sets = split(examples, history.until, purge=purge)
    train_labels = [examples[i].label for i in sets.train]
    if len(set(train_labels)) < 2:
        raise ModelError("the training set has a single class; give a longer history")
    batch = HistGradientBoostingClassifier(random_state=seed)
    batch.fit(_matrix(examples, sets.train), np.asarray(train_labels))
    batch_p = batch.predict_proba(_matrix(examples, sets.test))[:, 1].tolist()
    seconds["batch"] = time.perf_counter() - start
    seconds["total"] = time.perf_counter() - began

    test_labels = [examples[i].label for i in sets.test]
    return EvaluationReport(
        history=history,
        seed=seed,
        purge=purge,
        split=sets,
        online=quality(test_labels, [predictions[i] for i in sets.test]),
        batch=quality(test_labels, batch_p),
        online_prequential=learner.metrics.snapshot(),
        online_predictions=predictions,
        batch_predictions=[float(p) for p in batch_p],
        seconds=seconds,
    )
