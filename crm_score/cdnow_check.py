"""CDNOW through the path users run, against the published figures and the holdout period.

The CDNOW records become ``order_placed`` events (:func:`crm_score.datasets.cdnow_events`), are
folded into profiles with the worker's deltas in event-time order
(:func:`crm_score.event_files.profiles_from_file`, as ``crm-score fit --events`` does) up to the
end of calibration (1997-09-30, week 39), and the population fit runs on those profiles. Each
model is then judged on weeks 40-78 as Fader, Hardie & Lee (2005) do: per-customer error of the
predicted repeat transactions, and the cohort's cumulative repeat transactions week by week
(the tracking plot). ``python -m bench.cdnow`` prints :func:`cdnow_report`.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crm_score.datasets import cdnow_holdout, write_cdnow_events
from crm_score.event_files import profiles_from_file
from crm_score.fit_report import fit_report
from scorers._special import FloatArray
from scorers.probability import ProbabilityModel, fit_from_profiles, summary_of
from scorers.profile import Profile
from scorers.purchase_models import PurchaseModel

__all__ = [
    "CALIBRATION_END",
    "PUBLISHED",
    "cdnow_profiles",
    "cdnow_report",
    "holdout_quality",
]

#: The end of CDNOW's calibration period: T is measured to the start of 1997-09-30 (day 272).
CALIBRATION_END = datetime(1997, 9, 30, tzinfo=UTC)
_HOLDOUT_WEEKS = 39
#: Published estimates on the 2,357-customer sample (shared/data/cdnow/README.md).
PUBLISHED: dict[str, dict[str, float]] = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4},
    "pareto_nbd": {
        "r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669, "log_likelihood": -9595.0,
    },
    "gamma_gamma": {"p": 6.25, "q": 3.74, "gamma": 15.44},
}  # fmt: skip


def cdnow_profiles(df: pd.DataFrame, until: datetime = CALIBRATION_END) -> dict[str, Profile]:
    """Profiles of the CDNOW customers as the worker would hold them at ``until``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cdnow.jsonl"
        write_cdnow_events(df, path)
        profiles, _, rejected = profiles_from_file(
            path, {"USD": 1.0}, now=datetime.now(UTC), until=until
        )
    if rejected:
        raise ValueError(f"{rejected} CDNOW events were rejected; the data set is not as shipped")
    return profiles


def _summaries(
    profiles: dict[str, Profile], order: pd.Index
) -> tuple[FloatArray, FloatArray, FloatArray]:
    rows = [summary_of(profiles[f"cdnow-{c}"], CALIBRATION_END) for c in order]
    table = np.array([row[:3] for row in rows if row is not None], dtype=np.float64)
    if len(table) != len(order):
        raise ValueError("a CDNOW customer has no calibration purchase")
    return table[:, 0], table[:, 1], table[:, 2]


def holdout_quality(
    model: PurchaseModel, df: pd.DataFrame, profiles: dict[str, Profile]
) -> dict[str, float]:
    """How well ``model`` predicts weeks 40-78: the mean absolute error of each customer's
    repeat transactions, and the tracking curve's mean absolute percentage error over the
    holdout weeks and its error at week 78 (cumulative repeat transactions of the cohort)."""
    truth = cdnow_holdout(df, holdout_weeks=_HOLDOUT_WEEKS)
    x, t_x, big_t = _summaries(profiles, truth.index)
    predicted = model.expected_purchases(float(_HOLDOUT_WEEKS), x, t_x, big_t)
    actual = truth["holdout"].to_numpy(dtype=np.float64)
    weekly = np.asarray(truth.attrs["weekly_repeats"], dtype=np.float64)
    weeks = np.arange(1, len(weekly) + 1, dtype=np.float64)
    # A customer who first bought on day f has been observed (7w - 1 - f) / 7 weeks by the last
    # day of week w (calibration's T runs to day 272 the same way).
    first = truth["first_day"].to_numpy(dtype=np.float64)
    age = np.maximum(7.0 * weeks[:, None] - 1.0 - first[None, :], 0.0) / 7.0
    zero = np.zeros_like(age)
    curve = model.expected_purchases(age, zero, zero, zero).sum(axis=1)
    observed = np.cumsum(weekly)
    holdout = slice(len(weekly) - _HOLDOUT_WEEKS, None)
    return {
        "holdout_mae": float(np.mean(np.abs(predicted - actual))),
        "holdout_predicted": float(predicted.sum()),
        "holdout_actual": float(actual.sum()),
        "tracking_mape_holdout": float(
            np.mean(np.abs(curve[holdout] - observed[holdout]) / observed[holdout])
        ),
        "tracking_week78_predicted": float(curve[-1]),
        "tracking_week78_actual": float(observed[-1]),
    }


def _fit(profiles: dict[str, Profile], kind: str) -> ProbabilityModel:
    return fit_from_profiles(profiles.values(), CALIBRATION_END, dropout=kind, version="1")


def cdnow_report(df: pd.DataFrame) -> dict[str, Any]:
    """The published figures next to ours (streaming path) and each model's holdout quality."""
    profiles = cdnow_profiles(df)
    pareto = _fit(profiles, "pareto_nbd")
    mbg = _fit(profiles, "mbgnbd")
    report = fit_report(pareto)
    bg_only = replace(pareto, purchases=None)
    models = {"bgnbd": bg_only.scoring, "mbgnbd": mbg.scoring, "pareto_nbd": pareto.scoring}
    return {
        "published": PUBLISHED,
        "ours": {
            "bgnbd": report["bgnbd"],
            "gamma_gamma": report["gamma_gamma"],
            **{k: m.to_dict() for k, m in models.items() if k != "bgnbd"},
        },
        "holdout": {k: holdout_quality(m, df, profiles) for k, m in models.items()},
        "customers": report["customers"],
        "repeat_buyers": int(sum(p.transactions > 1 for p in profiles.values())),
    }
