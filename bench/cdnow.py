"""CDNOW through the streaming path: published figures next to ours, and each model's holdout
quality (weeks 40-78). Prints JSON; the README's model-quality table comes from it.

    python -m bench.cdnow [--data tests/data/cdnow/CDNOW_sample.txt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from crm_score.cdnow_check import cdnow_report
from crm_score.datasets import load_cdnow_sample

_SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "cdnow" / "CDNOW_sample.txt"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=_SAMPLE, help="CDNOW_sample.txt")
    report = cdnow_report(load_cdnow_sample(parser.parse_args().data))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
