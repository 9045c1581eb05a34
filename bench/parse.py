"""Parse cost per event: :meth:`schemas.EventParser.parse` over simulated valid events (no I/O).

Prints JSON with the median, over ``--runs`` runs, of the CPU microseconds one event takes
(process time: steadier than wall time on a shared machine), per kind and over all of them.

    python -m bench.parse --customers 2000 --runs 5

``--compare-duplicate-check`` alternates runs with and without the duplicate-key check
(:mod:`schemas._duplicates`) in the same process and reports both, and the check alone.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

import schemas.parse
from crm_score.simulate import SimulationConfig, simulate
from schemas import EventParser
from schemas._duplicates import duplicate_key


def _microseconds(parser: EventParser, messages: list[tuple[bytes, str]], now: datetime) -> float:
    start = time.process_time()
    for value, kind in messages:
        parser.parse(value, kind, now)
    return (time.process_time() - start) / len(messages) * 1e6


def main(args: argparse.Namespace) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    config = SimulationConfig.ending_at(now, days=args.days, customers=args.customers, seed=1)
    valid = [(m.value, m.kind) for m in simulate(config) if m.fault is None]
    parser = EventParser(max_future_skew=timedelta(days=1))
    kinds = ("purchase", "service", "marketing")
    by_kind = {kind: [m for m in valid if m[1] == kind] for kind in kinds}
    out: dict[str, Any] = {"events": len(valid), "runs": args.runs}
    if args.compare_duplicate_check:
        return out | _compare(parser, valid, now, args.runs)
    for name, messages in {"all": valid, **by_kind}.items():
        runs = [_microseconds(parser, messages, now) for _ in range(args.runs)]
        out[f"{name}_us_per_event"] = round(statistics.median(runs), 2)
    return out


def _compare(
    parser: EventParser, messages: list[tuple[bytes, str]], now: datetime, runs: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {"with_check": [], "without_check": [], "check_alone": []}
    for _ in range(runs):
        vars(schemas.parse)["duplicate_key"] = duplicate_key
        times["with_check"].append(_microseconds(parser, messages, now))
        vars(schemas.parse)["duplicate_key"] = lambda raw: None
        times["without_check"].append(_microseconds(parser, messages, now))
        vars(schemas.parse)["duplicate_key"] = duplicate_key
        start = time.process_time()
        for value, _ in messages:
            duplicate_key(value)
        times["check_alone"].append((time.process_time() - start) / len(messages) * 1e6)
    return {f"{k}_us_per_event": round(statistics.median(v), 2) for k, v in times.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare-duplicate-check", action="store_true")
    print(orjson.dumps(main(parser.parse_args()), option=orjson.OPT_INDENT_2).decode())
