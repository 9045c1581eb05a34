"""Fit times: BG/NBD + Gamma-Gamma by maximum likelihood, the top-tier CLV cut and the RFM
quintile sketch, on simulated populations of several sizes (in memory, no I/O).

Prints JSON with the median of ``--runs`` runs per size and stage.

    python -m bench.fit --sizes 5000 100000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from scorers.probability import fit_from_profiles
from scorers.probability_batch import high_value_cut
from scorers.quintiles import QuintileSketch
from scorers.rfm import rfm
from tests.populations import AS_OF, simulate


def _time_once(n: int, seed: int) -> dict[str, float]:
    profiles = simulate(n, seed)
    start = time.perf_counter()
    model = fit_from_profiles(profiles, AS_OF)
    fitted = time.perf_counter()
    high_value_cut(model, profiles, 0.2)
    cut = time.perf_counter()
    sketch = QuintileSketch()
    as_of = datetime.fromtimestamp(AS_OF.timestamp(), UTC)
    for profile in profiles:
        sketch.update(rfm(profile, as_of))
    sketch.boundaries(1, as_of)
    done = time.perf_counter()
    return {
        "bgnbd_gamma_gamma_seconds": fitted - start,
        "high_value_cut_seconds": cut - fitted,
        "rfm_sketch_seconds": done - cut,
        "total_seconds": done - start,
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in args.sizes:
        runs = [_time_once(n, seed) for seed in range(args.runs)]
        out[str(n)] = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    return {"runs": args.runs, "median_by_customers": out}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    print(orjson.dumps(main(parser.parse_args()), option=orjson.OPT_INDENT_2).decode())
