"""Throughput of the batch sentiment call, :func:`scorers.sentiment.score_many`, on one core.

Texts are the evaluation tickets (Chinese and English) varied with a counter so that no cache
helps; the models are loaded before timing. Prints JSON with the median of ``--runs`` runs, by
wall time and by the process's CPU time (on a shared machine the CPU figure is the one-core
rate; the wall figure also counts the time other processes held the core).

    python -m bench.sentiment --texts 50000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from scorers.sentiment import score_many
from scorers.sentiment.evaluate import read_labelled

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "sentiment"


def texts_for(lang: str, n: int) -> list[str]:
    """``n`` distinct texts built from the evaluation set of ``lang`` ("zh", "en" or "mixed")."""
    langs = ["zh", "en"] if lang == "mixed" else [lang]
    base = [text for code in langs for text, _ in read_labelled(DATA / f"eval_{code}.jsonl")]
    return [f"{base[i % len(base)]} #{i}" for i in range(n)]


def _rates(texts: list[str]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    score_many(texts)
    return len(texts) / (time.perf_counter() - wall), len(texts) / (time.process_time() - cpu)


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Median texts/s of each language mix."""
    score_many(["warm-up", "预热"])
    out: dict[str, Any] = {}
    for lang in ("zh", "en", "mixed"):
        texts = texts_for(lang, args.texts)
        runs = [_rates(texts) for _ in range(args.runs)]
        out[lang] = {
            "texts_per_cpu_second_median": round(statistics.median(r[1] for r in runs)),
            "texts_per_wall_second_median": round(statistics.median(r[0] for r in runs)),
        }
    return {"texts": args.texts, "runs": args.runs, "by_language": out}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    print(orjson.dumps(main(parser.parse_args())).decode())
