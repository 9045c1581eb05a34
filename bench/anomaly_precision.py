"""Precision and recall of purchase-anomaly alerts on a simulated shop with injected anomalies.

Simulates ``--customers`` over ``--days`` with ``--fraction`` of orders starting an anomaly
(large order, burst of orders or return spree; see ``crm_score.simulate``), walks each
customer's purchase events in event-time order (ties: time, then event id) through
:class:`scorers.anomaly.AnomalyScorer` as the round does, and compares the alerts with the
injected truth. An alert is a true positive when its event is one of the injected anomalous
events; an episode is found when at least one of its events alerted. Prints JSON.

    python -m bench.anomaly_precision --customers 5000 --seeds 1 2 3 --quantiles 0.999 0.9999
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from typing import Any

import orjson

from crm_score.simulate import ANOMALY_KINDS, SimulationConfig, simulate
from scorers.anomaly import AnomalyPolicy, AnomalyScorer, PurchaseHistory

Event = tuple[int, str, str, int]  # epoch second, event id, type, amount (minor units)


def _histories(customers: int, days: float, seed: int, fraction: float) -> tuple[
    dict[str, list[Event]], list[dict[str, Any]]
]:  # fmt: skip
    config = SimulationConfig(customers=customers, days=days, seed=seed, anomaly_fraction=fraction)
    sim = simulate(config)
    events: dict[str, list[Event]] = defaultdict(list)
    for message in sim:
        if message.kind != "purchase" or message.fault is not None:
            continue
        env = orjson.loads(message.value)
        at = int(message.event_time.timestamp())
        amount = int(env["payload"]["amount_minor"])
        events[env["customer_id"]].append((at, env["event_id"], env["type"], amount))
    for seq in events.values():
        seq.sort()
    return events, sim.anomaly_truth()


def evaluate(
    events: dict[str, list[Event]], truth: list[dict[str, Any]], policy: AnomalyPolicy
) -> dict[str, Any]:
    """Walk every customer's events through the scorer; alerts vs injected truth."""
    scorer = AnomalyScorer(policy)
    episode_of = {eid: k for k, item in enumerate(truth) for eid in item["event_ids"]}
    found: set[int] = set()
    alerts = true_alerts = scored = 0
    by_signal: Counter[str] = Counter()
    true_by_signal: Counter[str] = Counter()
    started = time.perf_counter()
    walked = 0
    for seq in events.values():
        history = PurchaseHistory()
        for at, event_id, event_type, amount in seq:
            history, result = scorer.score(history, event_type, at, amount)
            walked += 1
            if result is None:
                continue
            scored += 1
            if not result.anomalous:
                continue
            alerts += 1
            signal = min(result.p_values, key=result.p_values.__getitem__)
            by_signal[signal] += 1
            if event_id in episode_of:
                true_alerts += 1
                true_by_signal[signal] += 1
                found.add(episode_of[event_id])
    elapsed = time.perf_counter() - started
    kinds = Counter(item["kind"] for item in truth)
    found_kinds = Counter(truth[k]["kind"] for k in found)
    return {
        "quantile": policy.quantile,
        "events": walked,
        "scored_events": scored,
        "alerts": alerts,
        "true_alerts": true_alerts,
        "precision": round(true_alerts / alerts, 4) if alerts else None,
        "recall_episodes": round(len(found) / len(truth), 4) if truth else None,
        "false_alerts_per_10k_scored": round(1e4 * (alerts - true_alerts) / max(scored, 1), 2),
        "precision_by_signal": {
            s: round(true_by_signal[s] / n, 4) for s, n in sorted(by_signal.items())
        },
        "alerts_by_signal": dict(sorted(by_signal.items())),
        "recall_by_kind": {
            k: round(found_kinds[k] / kinds[k], 4) for k in ANOMALY_KINDS if kinds[k]
        },
        "episodes_by_kind": {k: kinds[k] for k in ANOMALY_KINDS},
        "microseconds_per_event": round(1e6 * elapsed / max(walked, 1), 2),
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for seed in args.seeds:
        events, truth = _histories(args.customers, args.days, seed, args.fraction)
        for quantile in args.quantiles:
            result = evaluate(events, truth, AnomalyPolicy(quantile=quantile))
            runs.append({"seed": seed, **result})
    return {
        "customers": args.customers,
        "days": args.days,
        "anomaly_fraction": args.fraction,
        "runs": runs,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--days", type=float, default=730.0)
    parser.add_argument("--fraction", type=float, default=0.002)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--quantiles", type=float, nargs="+", default=[0.999, 0.9999])
    print(orjson.dumps(main(parser.parse_args()), option=orjson.OPT_INDENT_2).decode())
