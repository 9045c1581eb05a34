"""Record the golden scenario and its outputs: ``python -m tests.golden.record [--check]``.

Run from the repository root. It simulates the shop (seeded), fits the probability model and
the RFM boundaries as of 30 % of the history on the events before that time (what a worker
would be given by ``crm-score fit``), then replays the rounds with the churn scoring in its
cold-start fallback and, at 40 %, 60 % and 80 % of the history, trains the learner's
:class:`~scorers.learner.OnlineLearner` on every training example emitted so far (in emission
order, as the learner worker reads them) and publishes its compiled model and clusters, which
the following rounds score with. The files are written to ``tests/data/golden/``; the
outputs are those of replaying the stored files (:func:`tests.golden.scenario.replay`), and are
checked to equal the ones seen while training.

Every byte is deterministic: xz (no timestamp, no name), JSON with a fixed key order. 1,000
customers keep the files under 6 MB (2,000 made 16 MB) and still raise every alert type of the
round.
``--check`` records into a temporary directory and exits 1 if any file differs from the stored
one (run it twice in a row after a re-record).

If a deliberate change of the round changes its outputs, re-record in a commit of its own whose
message says which outputs changed and why.
"""

from __future__ import annotations

import argparse
import lzma
import sys
import tempfile
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import orjson

from crm_core.settings import Settings
from crm_score.evaluate_replay import fit_population_at, read_events
from crm_score.event_files import write_jsonl
from crm_score.simulate import SimulationConfig, simulate
from schemas import TrainingExample
from scorers.learner import OnlineLearner
from tests.golden.scenario import (
    EVENTS,
    GOLDEN_DIR,
    OUTPUTS,
    PUBLISHED,
    ChurnRelease,
    Published,
    replay,
    round_settings,
    scheduled,
    unpacked,
)

__all__ = ["SIMULATION", "main", "record"]

#: The simulated shop (about 42k events).
SIMULATION = SimulationConfig(
    customers=1000,
    days=365.0,
    seed=20,
    start=datetime(2025, 1, 1, tzinfo=UTC),
    anomaly_fraction=0.01,
)
_NOW = datetime(2026, 6, 1, tzinfo=UTC)  # after the window: no event lies in the future
_FIT_AT = 0.3
_RELEASES_AT = (0.4, 0.6, 0.8)
_FILES = (EVENTS, PUBLISHED, OUTPUTS)


def _xz(data: bytes, path: Path) -> None:
    """xz holds no name and no timestamp: the same data gives the same bytes."""
    path.write_bytes(lzma.compress(data, format=lzma.FORMAT_XZ, preset=9))


class _Learner:
    """The learner worker, in process: learns every new example, publishes at set times."""

    def __init__(self, at: list[int]) -> None:
        self.at = at
        self.learner = OnlineLearner()
        self.learned = 0
        self.releases: list[ChurnRelease] = []

    def __call__(self, limit: int, examples: list[TrainingExample]) -> ChurnRelease | None:
        if not self.at or limit < self.at[0]:
            return None
        self.at.pop(0)
        for example in examples[self.learned :]:
            self.learner.learn_one(example.idempotency_key, example.features, example.label)
        self.learned = len(examples)
        clusters = self.learner.clusters
        release = ChurnRelease(
            after_round=limit,
            version=str(len(self.releases) + 1),
            model=self.learner.model.compile().to_bytes(),
            clusters=clusters.compile().to_bytes() if clusters.ready else None,
        )
        self.releases.append(release)
        return release


def record(into: Path) -> tuple[int, int]:
    """Write the three golden files into ``into``; returns (events, output records)."""
    # BG/NBD scores: under the default Pareto/NBD this shop raises no high_value_at_risk within
    # its year (its frequent buyers' P(alive) stays above the threshold), and the file must
    # exercise every alert of the round.
    settings = Settings(_env_file=None, dropout_model="bgnbd")
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "events.jsonl"
        events = write_jsonl(simulate(SIMULATION), plain)
        _xz(plain.read_bytes(), into / EVENTS)
        parsed = read_events(plain, settings, now=_NOW)
        first, last = parsed.first_at, parsed.last_at
        fit_time = datetime.fromtimestamp(first + round(_FIT_AT * (last - first)), UTC)
        model, boundaries = fit_population_at(parsed, fit_time, settings)
        learner = _Learner([first + round(f * (last - first)) for f in _RELEASES_AT])
        published = Published(
            simulation=asdict(SIMULATION),
            now=_NOW,
            settings=round_settings(settings),
            probability_model=replace(model, version="1").to_json(),  # the registry's number
            rfm_boundaries=boundaries.model_dump_json().encode(),
            churn=[],
        )
        seen = list(replay(plain, published, learner))
        published = replace(published, churn=learner.releases)
        (into / PUBLISHED).write_bytes(published.to_bytes())
        stored = Published.from_bytes((into / PUBLISHED).read_bytes())
        events_file = unpacked(into / EVENTS, Path(tmp) / "stored.jsonl")
        recorded = list(replay(events_file, stored, scheduled(stored.churn)))
    if recorded != seen:
        raise SystemExit("replaying the stored files gave other outputs than recording them")
    lines = b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in recorded)
    _xz(lines, into / OUTPUTS)
    return events, len(recorded)


def main(argv: list[str] | None = None) -> int:
    """Record into tests/data/golden/, or with ``--check`` compare a new recording with it."""
    parser = argparse.ArgumentParser(prog="python -m tests.golden.record", description=__doc__)
    parser.add_argument("--check", action="store_true", help="record to a temp dir and compare")
    args = parser.parse_args(argv)
    if not args.check:
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        events, records = record(GOLDEN_DIR)
        sizes = {name: (GOLDEN_DIR / name).stat().st_size for name in _FILES}
        print(orjson.dumps({"events": events, "records": records, "bytes": sizes}).decode())
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        record(Path(tmp))
        differ = [
            n for n in _FILES if (Path(tmp) / n).read_bytes() != (GOLDEN_DIR / n).read_bytes()
        ]
    print(orjson.dumps({"differ": differ}).decode())
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
