"""``crm-score score``: every customer of an event file scored as of one moment.

The file is replayed through the worker's round scorer (:mod:`crm_score.evaluate_replay`) up to
the last second before ``as_of``, in three steps:

1. The probability model (with its value-tier cut) and the RFM boundaries are fitted as of
   ``as_of`` on the events before it, as ``crm-score fit --events FILE --as-of`` does.
2. A first replay emits the churn training examples; the online learner
   (:class:`scorers.learner.OnlineLearner`, what the learner worker runs) learns every one in
   emission order. Their labels all resolved before ``as_of``: nothing after it is seen.
3. A second replay runs with that churn model published from the start (as a worker that had
   it), so the stored profiles and alert states are the ones such a worker keeps; then one more
   round with its watermark at ``as_of`` gives every customer a checkpoint at ``as_of``.

Each output line is that checkpoint's score snapshot (the fields of ``crm.scores``): among them
``p_alive``, ``expected_purchases_30d`` and ``expected_purchases_90d`` (expected purchases in
the 30 and 90 days after ``as_of``), ``clv`` (discounted, over the probability model's CLV
horizon, minor units), ``segment``, ``churn_probability`` (no purchase in the next
``CRM_CHURN_HORIZON_DAYS``), ``churn_model_version`` and ``value_group``. Before the learner
has ``CRM_CHURN_MIN_EXAMPLES`` examples the churn score is the fallback ``1 - P(alive)``, as in
the worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from crm_core.errors import ModelError
from crm_core.settings import Settings
from crm_score.evaluate_replay import (
    ParsedEvents,
    Replayed,
    fit_population_at,
    read_events,
    replay_events,
)
from scorers.churn_scoring import ChurnModelRef
from scorers.customer_state import CustomerState
from scorers.learner import OnlineLearner
from scorers.probability import ProbabilityModel
from scorers.profile import Profile
from scorers.quintiles import RfmBoundaries
from streams.round.scorer import CustomerBefore, round_scorer

__all__ = ["ScoredFile", "score_customers", "score_file", "score_parsed"]

_PARTITION = 0


@dataclass(slots=True)
class ScoredFile:
    """The models a ``score`` run fitted and learned, the replay behind it, and the lines."""

    as_of: datetime
    model: ProbabilityModel
    boundaries: RfmBoundaries
    learner: OnlineLearner
    churn: ChurnModelRef
    replayed: Replayed
    lines: list[dict[str, Any]]


def score_customers(
    settings: Settings,
    model: ProbabilityModel,
    boundaries: RfmBoundaries,
    churn: ChurnModelRef | None,
    customers: dict[str, tuple[Profile, CustomerState]],
    as_of: int,
) -> list[dict[str, Any]]:
    """One score snapshot per customer (by id) at epoch second ``as_of``, from their stored
    profile and state: a round whose watermark is ``as_of`` with a checkpoint for everyone."""
    scorer = round_scorer(settings, boundaries=boundaries, model=model)
    scorer.retention = None  # scores every customer of the file: retention is the worker's
    if scorer.churn is not None:
        scorer.churn.model = churn
    before = {
        customer: CustomerBefore(profile, state, _PARTITION)
        for customer, (profile, state) in sorted(customers.items())
    }
    out = scorer.score([], before, {_PARTITION: as_of}, at_watermark=True)
    latest: dict[str, dict[str, Any]] = {}
    for message in out.snapshots:
        snapshot = orjson.loads(message.value)
        latest[snapshot["customer_id"]] = snapshot  # the last is the checkpoint at as_of
    return [latest[customer] for customer in before]


def score_parsed(
    parsed: ParsedEvents,
    settings: Settings,
    as_of: datetime,
    *,
    churn_version: str = "replay",
    settle: bool = True,
) -> ScoredFile:
    """:func:`score_file` on events already read; ``churn_version`` names the learned model.

    ``settle=False`` skips the second replay: the scores are the same (the churn model changes
    no profile and no input of a score), only the alert states kept differ (churn alerts and
    value groups as the cold-start fallback left them).
    """
    as_of = as_of.astimezone(UTC)
    moment = math.ceil(as_of.timestamp())
    if moment <= parsed.first_at:
        raise ModelError(
            f"--as-of {as_of.isoformat()} is not after the first event "
            f"({datetime.fromtimestamp(parsed.first_at, UTC).isoformat()}); score later"
        )
    model, boundaries = fit_population_at(parsed, as_of, settings)
    model = replace(model, version="replay")
    until = moment - 1
    first = replay_events(parsed, settings, model, boundaries, until=until)
    learner = OnlineLearner(settings.churn_model_kind, window=settings.learner_metrics_window)
    for example in first.examples:
        learner.learn_one(example.idempotency_key, example.features, example.label)
    churn = ChurnModelRef(churn_version, learner.model.compile())
    second = (
        replay_events(parsed, settings, model, boundaries, until=until, churn_model=churn)
        if settle
        else first
    )
    customers = {c: (p, second.states.get(c, CustomerState())) for c, p in second.profiles.items()}
    lines = score_customers(settings, model, boundaries, churn, customers, moment)
    return ScoredFile(as_of, model, boundaries, learner, churn, second, lines)


def score_file(path: Path, settings: Settings, as_of: datetime, *, now: datetime) -> ScoredFile:
    """Every customer of ``path`` with an event before ``as_of``, scored as of ``as_of`` (see
    the module docstring); ``now`` bounds how far in the future an event may lie."""
    return score_parsed(read_events(path, settings, now=now), settings, as_of)
