"""The online churn learner against the truth, offline: dump each cutoff once (minutes), then
judge the learner on the dump (seconds). Prints JSON.

    python -m bench.churn_truth dump --events shop.jsonl --truth truth.jsonl --out DIR
    python -m bench.churn_truth judge DIR [--kind logistic]

``dump`` runs what ``crm-score evaluate --truth`` runs at each cutoff
(:func:`crm_score.evaluate_truth.cutoff_data`: one replay up to it) and writes
``DIR/cutoff-N.npz``: the learner's training examples in learning order (values in
:data:`scorers.churn_features.FEATURE_NAMES` order, NaN where missing; labels; idempotency keys),
and every scored customer's feature row at the cutoff, the online model's score, days since
the last order, P(alive) and the truth labels. Re-dump after a change of the features.

``judge`` trains a fresh :class:`scorers.learner.OnlineLearner` on each cutoff's examples in
order (predict, then learn, as the learner worker does; a repeated key is learned once) and
scores the rows with its compiled model; the batch HistGradientBoosting and recency-only
baselines are trained on the same examples as :func:`crm_score.evaluate_truth.judge` trains
them. Each gets AUC and log loss against "no order in the 90 days after the cutoff", and the
learner its mean learn + predict time per example (µs, on this machine at its load).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from crm_core.settings import Settings
from crm_score.evaluate_replay import read_events
from crm_score.evaluate_truth import (
    cutoff_data,
    cutoff_times,
    order_times,
    read_dropouts,
    truth_quality,
)
from scorers.churn_features import FEATURE_NAMES, present
from scorers.churn_model import ModelKind
from scorers.learner import OnlineLearner


def dump(events: Path, truth: Path, out: Path) -> list[dict[str, Any]]:
    """Write ``out/cutoff-N.npz`` for each cutoff of ``crm-score evaluate --truth``."""
    settings = Settings()
    parsed = read_events(events, settings, now=datetime.now(UTC))
    orders, dropouts = order_times(parsed), read_dropouts(truth)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, at in enumerate(cutoff_times(parsed, settings)):
        data = cutoff_data(parsed, settings, at, orders, dropouts)
        np.savez_compressed(
            out / f"cutoff-{i}.npz",
            at=np.array(at.timestamp()),
            names=np.array(FEATURE_NAMES),
            train_x=np.array(
                [[e.features.get(n, math.nan) for n in FEATURE_NAMES] for e in data.examples],
                dtype=np.float64,
            ).reshape(len(data.examples), len(FEATURE_NAMES)),
            train_y=np.array([e.label for e in data.examples], dtype=np.int8),
            train_keys=np.array([e.idempotency_key for e in data.examples]),
            rows=np.array(data.rows, dtype=np.float64),
            online=np.array(data.online, dtype=np.float64),
            p_alive=np.array(data.p_alive, dtype=np.float64),
            recency_days=np.array(data.recency_days, dtype=np.float64),
            no_purchase=np.array(data.labels["no_purchase"], dtype=np.int8),
            dropped_out=np.array(data.labels["dropped_out"], dtype=np.int8),
        )
        written.append(
            {"cutoff": at.isoformat(), "examples": len(data.examples), "rows": len(data.rows)}
        )
    return written


def _quality(labels: np.ndarray[Any, Any], predictions: list[float]) -> dict[str, Any]:
    q = truth_quality(labels.tolist(), predictions)
    return {"auc": None if q.auc is None else round(q.auc, 4), "log_loss": round(q.log_loss, 4)}


def judge_cutoff(path: Path, kind: ModelKind, seed: int = 0) -> dict[str, Any]:
    """The learner and the two baselines on one dumped cutoff (see the module docstring)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    d = np.load(path, allow_pickle=False)
    names = tuple(str(n) for n in d["names"])
    if names != FEATURE_NAMES:
        raise SystemExit(f"{path} was dumped with other features; dump it again")
    train_x, train_y, rows, truth = d["train_x"], d["train_y"], d["rows"], d["no_purchase"]
    learner = OnlineLearner(kind)
    examples = [present(row) for row in train_x.tolist()]
    started = time.perf_counter()
    for key, x, y in zip(d["train_keys"].tolist(), examples, train_y.tolist(), strict=True):
        learner.learn_one(key, x, y)
    per_example = (time.perf_counter() - started) / max(1, len(examples)) * 1e6
    online = learner.model.compile().score_matrix(rows, FEATURE_NAMES).tolist()
    batch = HistGradientBoostingClassifier(random_state=seed).fit(train_x, train_y)
    r = FEATURE_NAMES.index("recency_days")
    recency = LogisticRegression().fit(np.log1p(train_x[:, [r]]), train_y)
    return {
        "cutoff": datetime.fromtimestamp(float(d["at"]), UTC).isoformat(),
        "examples": len(examples),
        "customers": len(rows),
        "online": _quality(truth, online) | {"learn_us_per_example": round(per_example, 1)},
        "batch": _quality(truth, batch.predict_proba(rows)[:, 1].tolist()),
        "recency": _quality(truth, recency.predict_proba(np.log1p(rows[:, [r]]))[:, 1].tolist()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="replay each cutoff once and write DIR/cutoff-N.npz")
    d.add_argument("--events", type=Path, required=True, help="crm-score simulate --out file")
    d.add_argument("--truth", type=Path, required=True, help="crm-score simulate --truth file")
    d.add_argument("--out", type=Path, required=True, help="directory for the dumps")
    j = sub.add_parser("judge", help="train and judge the learner on the dumps")
    j.add_argument("dir", type=Path, help="a directory written by dump")
    j.add_argument("--kind", default="logistic", choices=["logistic", "hoeffding"])
    args = parser.parse_args()
    if args.command == "dump":
        report: Any = {"dumped": dump(args.events, args.truth, args.out)}
    else:
        paths = sorted(args.dir.glob("cutoff-*.npz"))
        if not paths:
            raise SystemExit(f"no cutoff-N.npz in {args.dir}; run dump first")
        report = {
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "cutoffs": [judge_cutoff(p, args.kind) for p in paths],
        }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
