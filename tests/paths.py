"""Where a test finds the repository and the test data, wherever in the tests tree it lives."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
CDNOW_SAMPLE = DATA / "cdnow" / "CDNOW_sample.txt"
