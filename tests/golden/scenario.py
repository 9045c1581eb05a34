"""The golden scenario: its inputs on disk, and the replay that turns them into output records.

Inputs (``tests/data/golden/``):

- ``events.jsonl.xz``: a seeded simulation (``crm_score.simulate``), stored rather than
  simulated again so a change to the simulator does not move the golden outputs;
- ``published.json``: what the worker would have been given: the settings the round reads, the
  probability model and RFM boundaries as published (``ProbabilityModel.to_json``,
  ``RfmBoundaries.model_dump_json``), and the churn model and cluster versions the learner
  published, each with the round after which a worker would have hot-swapped to it.

:func:`replay` drives the worker's own round code (:class:`streams.round.scorer.RoundScorer`, via
:class:`crm_score.evaluate_replay.RoundReplay`) over the events in daily rounds and yields one
JSON-ready record per output, in order: a ``round`` header, then the round's score snapshots,
alerts, training examples and due times, and a ``publish`` record when a churn model is swapped
in. Snapshot, alert and example records hold the parsed JSON the worker would publish.
"""

from __future__ import annotations

import base64
import lzma
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from pydantic import SecretStr

from crm_core.settings import Settings
from crm_score.evaluate_replay import RoundReplay, read_events
from schemas import TrainingExample
from scorers.churn_model import ChurnScorer
from scorers.churn_scoring import ChurnModelRef
from scorers.clusters import ClusterAssigner
from scorers.probability import ProbabilityModel
from scorers.quintiles import RfmBoundaries
from streams.round.scorer import round_scorer

__all__ = [
    "EVENTS",
    "FORMAT",
    "GOLDEN_DIR",
    "OUTPUTS",
    "PUBLISHED",
    "ChurnRelease",
    "Published",
    "Publisher",
    "Record",
    "read_records",
    "replay",
    "round_settings",
    "scheduled",
    "unpacked",
]

#: Where the golden files live.
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "golden"
EVENTS = "events.jsonl.xz"
PUBLISHED = "published.json"
OUTPUTS = "outputs.jsonl.xz"
#: ``format`` of ``published.json``.
FORMAT = "crm-scoring/golden/v1"

Record = dict[str, Any]


class ChurnRelease(NamedTuple):
    """A churn model version the learner published (registry payloads, as the worker reads
    them), swapped in after the round whose limit is ``after_round``."""

    after_round: int
    version: str
    model: bytes
    clusters: bytes | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (payloads in base64)."""
        clusters = None if self.clusters is None else base64.b64encode(self.clusters).decode()
        return {
            "after_round": self.after_round,
            "version": self.version,
            "model": base64.b64encode(self.model).decode(),
            "clusters": clusters,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ChurnRelease:
        """Inverse of :meth:`to_json`."""
        clusters = raw["clusters"]
        return cls(
            int(raw["after_round"]),
            str(raw["version"]),
            base64.b64decode(raw["model"]),
            None if clusters is None else base64.b64decode(clusters),
        )


@dataclass(frozen=True, slots=True)
class Published:
    """Everything the worker is given beside the events (``published.json``)."""

    simulation: dict[str, Any]  # how events.jsonl.xz was made (for the record only)
    now: datetime  # bounds how far in the future an event may lie when parsing
    settings: dict[str, Any]
    probability_model: bytes
    rfm_boundaries: bytes
    churn: list[ChurnRelease]

    def to_bytes(self) -> bytes:
        """``published.json``'s bytes (indented, keys in a fixed order)."""
        return orjson.dumps(
            {
                "format": FORMAT,
                "simulation": self.simulation,
                "now": self.now,
                "settings": self.settings,
                "probability_model": orjson.loads(self.probability_model),
                "rfm_boundaries": orjson.loads(self.rfm_boundaries),
                "churn": [release.to_json() for release in self.churn],
            },
            option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Published:
        """Inverse of :meth:`to_bytes`."""
        raw = orjson.loads(data)
        if raw.get("format") != FORMAT:
            raise ValueError(f"published.json format {raw.get('format')!r} is not {FORMAT!r}")
        return cls(
            simulation=raw["simulation"],
            now=datetime.fromisoformat(raw["now"]),
            settings=raw["settings"],
            probability_model=orjson.dumps(raw["probability_model"]),
            rfm_boundaries=orjson.dumps(raw["rfm_boundaries"]),
            churn=[ChurnRelease.from_json(r) for r in raw["churn"]],
        )


def round_settings(settings: Settings) -> dict[str, Any]:
    """The settings as JSON, less secrets: passed back as arguments, they override both the
    defaults and the environment, so the replay does not depend on either."""
    return {
        name: value
        for name, value in settings.model_dump(mode="json").items()
        if not isinstance(getattr(settings, name), SecretStr)
    }


#: Called after each round with its limit and the training examples emitted so far; returns
#: the churn model to swap in before the next round, if any.
Publisher = Callable[[int, list[TrainingExample]], ChurnRelease | None]


def scheduled(releases: list[ChurnRelease]) -> Publisher:
    """The publisher that swaps in the recorded releases after their rounds."""
    by_round = {release.after_round: release for release in releases}

    def publish(limit: int, examples: list[TrainingExample]) -> ChurnRelease | None:
        return by_round.get(limit)

    return publish


def replay(events: Path, published: Published, publisher: Publisher) -> Iterator[Record]:
    """The output records of replaying ``events`` (a plain JSONL file: :func:`unpacked`)."""
    settings = Settings(_env_file=None, **published.settings)
    model = ProbabilityModel.from_json(published.probability_model)
    boundaries = RfmBoundaries.model_validate_json(published.rfm_boundaries)
    scorer = round_scorer(settings, boundaries=boundaries, model=model)
    churn = scorer.churn
    if churn is None:
        raise ValueError("round_scorer built no churn scoring; the golden scenario needs it")
    parsed = read_events(events, settings, now=published.now)
    examples: list[TrainingExample] = []
    for limit, applied, scored in RoundReplay(parsed, scorer).rounds(until=parsed.last_at):
        yield {
            "type": "round",
            "limit": limit,
            "events": len(applied),
            "timer_checkpoints": scored.timer_checkpoints,
        }
        for message in scored.snapshots:
            yield {"type": "snapshot", "value": orjson.loads(message.value)}
        for customer, key, message in scored.alerts:
            yield {
                "type": "alert",
                "customer": customer,
                "idempotency_key": key,
                "value": orjson.loads(message.value),
            }
        for message in scored.examples:
            examples.append(TrainingExample.from_json_bytes(message.value))
            yield {"type": "example", "value": orjson.loads(message.value)}
        for customer, due in scored.due.get(0, []):
            yield {"type": "due", "customer": customer, "due": due}
        release = publisher(limit, examples)
        if release is not None:
            churn.model = ChurnModelRef(release.version, ChurnScorer.from_bytes(release.model))
            if release.clusters is not None:
                churn.clusters = ClusterAssigner.from_bytes(release.clusters)
            yield {"type": "publish", "churn_model_version": release.version}


def read_records(path: Path) -> Iterator[Record]:
    """The records of an ``outputs.jsonl.xz`` file, in order, read lazily."""
    with lzma.open(path, "rb") as lines:
        for line in lines:
            yield orjson.loads(line)


def unpacked(path: Path, into: Path) -> Path:
    """``path`` (xz) decompressed to the file ``into``; returns ``into``."""
    with lzma.open(path, "rb") as src, into.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return into
