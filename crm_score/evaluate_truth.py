"""``crm-score evaluate --truth``: churn scores against what really happened, at fixed cutoffs.

At each cutoff every customer with an order before it is scored as of the cutoff, exactly as
``crm-score score --as-of CUTOFF`` does (:mod:`crm_score.score_file`: the probability model
fitted at the cutoff, the learner fed every label resolved before it), by four scorers:

- **online**: the online learner's churn probability (what the worker would score);
- **batch**: ``HistGradientBoostingClassifier`` trained on the same labelled examples and the
  same features (:data:`scorers.churn_features.FEATURE_NAMES`), scoring the same rows;
- **recency**: days since the last purchase alone, through a one-feature logistic regression
  on ``log1p(recency_days)`` fitted on the same examples (so its log loss means something);
- **1 - P(alive)**: the BG/NBD cold-start fallback.

Truth labels, per customer and cutoff:

- ``no_purchase`` (the headline): the customer placed no order in ``(cutoff, cutoff + horizon]``
  (``CRM_CHURN_HORIZON_DAYS``, 90). This is the event the churn probability is a probability
  of, so log loss, Brier score and reliability are meaningful against it. In a simulated shop
  every order is in the file, so this is the truth, not a proxy; cutoffs are placed so their
  horizon ends inside the history.
- ``dropped_out`` (with a ground-truth file from ``crm-score simulate --truth``): the
  simulator's latent dropout time is at or before the cutoff, i.e. the customer had already
  left for good (AUC only: no scorer predicts this event as such).

Each scorer gets ROC AUC, log loss, Brier score and a 10-bin reliability table (equal-width bins
of the predicted probability: count, mean predicted, observed rate).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from crm_core.errors import ModelError
from crm_core.settings import Settings
from crm_score.evaluate_replay import ParsedEvents, read_events
from crm_score.score_file import score_parsed
from schemas import PurchaseEvent, TrainingExample
from scorers.churn_features import FEATURE_NAMES, churn_feature_values

__all__ = [
    "CUTOFF_FRACTIONS",
    "SCORERS",
    "CutoffData",
    "CutoffResult",
    "Reliability",
    "TruthQuality",
    "cutoff_data",
    "cutoff_times",
    "evaluate_truth",
    "judge",
    "order_times",
    "read_dropouts",
    "truth_quality",
]

#: Where the cutoffs sit between the first event and the last one whose horizon fits.
CUTOFF_FRACTIONS: tuple[float, ...] = (0.5, 0.7, 0.9)
#: The scorers compared, in report order.
SCORERS: tuple[str, ...] = ("online", "batch", "recency", "one_minus_p_alive")
_BINS = 10
_EPS = 1e-15

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Reliability:
    """One bin of predicted probability: [low, high), its size, mean prediction and outcome."""

    low: float
    high: float
    n: int
    mean_predicted: float | None
    observed: float | None


@dataclass(frozen=True, slots=True)
class TruthQuality:
    """A scorer's predictions against a truth label."""

    auc: float | None
    log_loss: float
    brier: float
    reliability: tuple[Reliability, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded to 4 decimals."""
        return {
            "auc": None if self.auc is None else round(self.auc, 4),
            "log_loss": round(self.log_loss, 4),
            "brier": round(self.brier, 4),
            "reliability": [
                {
                    "bin": f"{r.low:.1f}-{r.high:.1f}",
                    "n": r.n,
                    "mean_predicted": None
                    if r.mean_predicted is None
                    else round(r.mean_predicted, 4),
                    "observed": None if r.observed is None else round(r.observed, 4),
                }
                for r in self.reliability
            ],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def truth_quality(labels: Sequence[int], predictions: Sequence[float]) -> TruthQuality:
    """AUC (None with one class), log loss (p clipped to [1e-15, 1 - 1e-15]), Brier score and
    the reliability table of ``predictions`` against ``labels``.

    >>> q = truth_quality([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> q.auc, round(q.brier, 4), q.reliability[8].n
    (0.75, 0.1581, 1)
    """
    from sklearn.metrics import roc_auc_score

    if not labels:
        raise ModelError("no customer to evaluate at this cutoff; give a longer history")
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    q = np.clip(p, _EPS, 1 - _EPS)
    loss = float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))
    both = 0 < y.sum() < y.size
    bins = np.minimum((p * _BINS).astype(np.int64), _BINS - 1)
    table = []
    for b in range(_BINS):
        inside = bins == b
        n = int(inside.sum())
        table.append(
            Reliability(
                b / _BINS,
                (b + 1) / _BINS,
                n,
                float(p[inside].mean()) if n else None,
                float(y[inside].mean()) if n else None,
            )
        )
    return TruthQuality(
        auc=float(roc_auc_score(y, p)) if both else None,
        log_loss=loss,
        brier=float(np.mean((p - y) ** 2)),
        reliability=tuple(table),
    )


@dataclass(slots=True)
class CutoffResult:
    """One cutoff: who was scored, how many examples the learners had, and each scorer's
    quality against each truth label."""

    at: datetime
    customers: int
    examples: int
    positive_rate: dict[str, float]
    quality: dict[str, dict[str, TruthQuality]]  # label -> scorer -> quality

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "cutoff": self.at.isoformat(),
            "customers": self.customers,
            "examples": self.examples,
            "positive_rate": {k: round(v, 4) for k, v in self.positive_rate.items()},
            "labels": {
                label: {name: q.to_dict() for name, q in scorers.items()}
                for label, scorers in self.quality.items()
            },
        }


def _matrix(rows: Sequence[Sequence[float | None]]) -> FloatArray:
    return np.array(
        [[math.nan if v is None else v for v in row] for row in rows], dtype=np.float64
    ).reshape(len(rows), len(FEATURE_NAMES))


def _example_matrix(examples: Sequence[TrainingExample]) -> FloatArray:
    return _matrix([[e.features.get(n) for n in FEATURE_NAMES] for e in examples])


def order_times(parsed: ParsedEvents) -> dict[str, list[int]]:
    """Each customer's order times (epoch seconds, sorted)."""
    orders: dict[str, list[int]] = {}
    for item in parsed.items:
        event = item.event
        if isinstance(event, PurchaseEvent) and event.type == "order_placed":
            orders.setdefault(event.customer_id, []).append(int(event.event_time.timestamp()))
    for times in orders.values():
        times.sort()
    return orders


def read_dropouts(path: Path) -> dict[str, float | None]:
    """Latent dropout times (epoch seconds; None: never) from ``crm-score simulate --truth``."""
    dropouts: dict[str, float | None] = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            item = orjson.loads(line)
            at = item.get("dropout_at")
            dropouts[item["customer_id"]] = (
                None if at is None else datetime.fromisoformat(at).timestamp()
            )
    return dropouts


@dataclass(slots=True)
class CutoffData:
    """What the scorers are judged on at one cutoff: the labelled examples resolved before it
    (emission order), every ordering customer's feature row at the cutoff, the online
    learner's score, P(alive) and recency of each, and the truth labels."""

    at: datetime
    examples: list[TrainingExample]
    rows: list[list[float]]
    online: list[float]
    p_alive: list[float]
    recency_days: list[float]
    labels: dict[str, list[int]]


def cutoff_data(
    parsed: ParsedEvents,
    settings: Settings,
    at: datetime,
    orders: dict[str, list[int]],
    dropouts: dict[str, float | None] | None,
) -> CutoffData:
    """Score every customer with an order before ``at`` as ``crm-score score`` does, and
    label them (``orders``: each customer's sorted order times; ``dropouts``: latent dropout
    times, if known)."""
    scored = score_parsed(parsed, settings, at, settle=False)
    moment = math.ceil(at.timestamp())
    horizon = math.ceil(settings.churn_horizon_days * 86_400)
    profiles, states = scored.replayed.profiles, scored.replayed.states
    data = CutoffData(at, scored.replayed.examples, [], [], [], [], {"no_purchase": []})
    if dropouts is not None:
        data.labels["dropped_out"] = []
    for line in scored.lines:
        if line["frequency"] <= 0:
            continue
        customer = line["customer_id"]
        profile, state = profiles[customer], states[customer]
        quintiles = (
            None if line["r_score"] is None else (line["r_score"], line["f_score"], line["m_score"])
        )
        data.rows.append(
            churn_feature_values(
                profile,
                state.recent,
                moment,
                quintiles=quintiles,
                p_alive=line["p_alive"],
                expected_purchases_90d=line["expected_purchases_90d"],
                last_gap_seconds=state.last_gap,
            )
        )
        data.online.append(line["churn_probability"])
        data.p_alive.append(1.0 if line["p_alive"] is None else line["p_alive"])
        data.recency_days.append(line["recency_days"])
        times = orders.get(customer, [])
        i = bisect.bisect_right(times, moment)
        bought = i < len(times) and times[i] <= moment + horizon
        data.labels["no_purchase"].append(0 if bought else 1)
        if dropouts is not None:
            dropout = dropouts.get(customer)
            data.labels["dropped_out"].append(int(dropout is not None and dropout <= moment))
    return data


def judge(data: CutoffData, seed: int = 0) -> CutoffResult:
    """The four scorers' quality at one cutoff (the batch and recency models trained here)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    examples = data.examples
    train_y = np.asarray([e.label for e in examples])
    if len(set(train_y.tolist())) < 2:
        raise ModelError(f"the examples before {data.at.isoformat()} have one class; cut later")
    batch = HistGradientBoostingClassifier(random_state=seed)
    batch.fit(_example_matrix(examples), train_y)
    recency = LogisticRegression()
    train_recency = [[math.log1p(e.features["recency_days"])] for e in examples]
    recency.fit(np.asarray(train_recency), train_y)
    rows_recency = np.log1p(np.asarray(data.recency_days, dtype=np.float64)).reshape(-1, 1)
    predictions = {
        "online": data.online,
        "batch": batch.predict_proba(_matrix(data.rows))[:, 1].tolist(),
        "recency": recency.predict_proba(rows_recency)[:, 1].tolist(),
        "one_minus_p_alive": [1.0 - a for a in data.p_alive],
    }
    return CutoffResult(
        at=data.at,
        customers=len(data.rows),
        examples=len(examples),
        positive_rate={label: sum(y) / len(y) for label, y in data.labels.items()},
        quality={
            label: {name: truth_quality(y, predictions[name]) for name in SCORERS}
            for label, y in data.labels.items()
        },
    )


def evaluate_truth(
    events_path: Path,
    settings: Settings,
    *,
    truth_path: Path | None = None,
    cutoffs: Sequence[datetime] | None = None,
    seed: int = 0,
    now: datetime | None = None,
) -> list[CutoffResult]:
    """Score every customer at each cutoff and compare the four scorers with the truth.

    ``cutoffs`` default to :data:`CUTOFF_FRACTIONS` of the span from the first event to the
    last event minus the horizon (whole seconds).
    """
    parsed = read_events(events_path, settings, now=now or datetime.now(UTC))
    cutoffs = cutoff_times(parsed, settings, cutoffs)
    orders = order_times(parsed)
    dropouts = None if truth_path is None else read_dropouts(truth_path)
    return [judge(cutoff_data(parsed, settings, at, orders, dropouts), seed) for at in cutoffs]


def cutoff_times(
    parsed: ParsedEvents, settings: Settings, cutoffs: Sequence[datetime] | None = None
) -> list[datetime]:
    """``cutoffs`` checked to lie in the history with a whole horizon after them; by default
    :data:`CUTOFF_FRACTIONS` of the span from the first event to the last event minus the
    horizon (whole seconds)."""
    horizon = timedelta(days=settings.churn_horizon_days)
    first = datetime.fromtimestamp(parsed.first_at, UTC)
    usable_end = datetime.fromtimestamp(parsed.last_at, UTC) - horizon
    if usable_end <= first:
        raise ModelError(f"the history is shorter than the {horizon.days}-day horizon")
    if cutoffs is None:
        span = (usable_end - first).total_seconds()
        cutoffs = [first + timedelta(seconds=round(f * span)) for f in CUTOFF_FRACTIONS]
    for at in cutoffs:
        if not first < at <= usable_end:
            raise ModelError(
                f"cutoff {at.isoformat()} must lie after the first event and at least the "
                f"horizon before the last ({usable_end.isoformat()})"
            )
    return list(cutoffs)
