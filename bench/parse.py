"""Parse cost per event: :meth:`schemas.EventParser.parse` over simulated valid events (no I/O).

Prints JSON with the median, over ``--runs`` runs, of the CPU microseconds one event takes
(process time: steadier than wall time on a shared machine), per kind and over all of them.

    python -m bench.parse --customers 2000 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from crm_score.simulate import SimulationConfig, simulate
from schemas import EventParser


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
    for name, messages in {"all": valid, **by_kind}.items():
        runs = [_microseconds(parser, messages, now) for _ in range(args.runs)]
        out[f"{name}_us_per_event"] = round(statistics.median(runs), 2)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--runs", type=int, default=5)
    print(orjson.dumps(main(parser.parse_args()), option=orjson.OPT_INDENT_2).decode())
