"""Pipeline throughput on one broker: raw aiokafka vs a no-op Faust agent vs crm-scoring.

Fills fresh input topics once with a simulated history (valid events), then, on the same data,
times (each ``--runs`` times, fresh consumer group and Redis prefix per run):

- ``raw_aiokafka``: one aiokafka consumer, getmany + orjson.loads, no processing;
- ``faust_noop``: a Faust agent that does nothing per event (bench/noop_faust.py);
- ``pipeline``: ``crm-score worker`` (parse, validate, reorder by event time, Redis, RFM
  snapshot to crm.scores, due-index, commit), in replay mode;
- ``pipeline_with_models`` (``--probability``): the same with a published model and RFM
  boundaries, so P(alive)/CLV, segments, silence timers and alerts are all on;
- ``quix_peer``: the peer a Python user would pick, a quix-streams app updating per-customer
  state in its RocksDB store on every event (bench/quix_peer.py; ``pip install -e '.[bench]'``;
  ``--no-quix`` leaves it out). It times itself from its first event to its last.

Churn labelling and scoring are always on; the churn learner runs too (it learns the run's
labelled examples and publishes versions the worker hot-swaps to): by default in its own process
(``crm-score learner``, started beside each pipeline worker and stopped with it, as the demo and
docker-compose run it), with ``--learner worker`` inside the worker (``CRM_LEARNER_ENABLED``), with
``--learner off`` not at all (then no churn version is published and churn is not scored).

Rates count from the first committed progress to fully caught up, so group-join time is left out.
Prints JSON with every run and the medians, the ratios of the pipeline to the no-op Faust agent
and to the quix-streams peer, the load average before and after (the machine may be shared), and
Redis bytes per customer (MEMORY USAGE, bench/redis_memory.py): ``all_keys`` over every key the
last pipeline run left (customers' keys, and shared keys shared out; ``all_keys_by_key`` splits
it), beside the first count of the profile hash and seen ids alone (500 customers).

    python -m bench.pipeline --customers 5000 --days 365 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from bench.redis_memory import all_keys_per_customer, profile_and_seen_per_customer
from crm_core.errors import EventRejected
from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.services import free_port
from crm_score.simulate import SimulatedMessage, SimulationConfig, simulate
from schemas import EventParser
from scorers.deltas import delta_for
from scorers.probability import ProbabilityModel, fit_from_profiles
from scorers.probability_batch import high_value_cut
from scorers.profile import Profile, apply_delta
from scorers.quintiles import QuintileSketch, RfmBoundaries
from scorers.rfm import rfm
from streams.ingest.lag import group_lag
from streams.ingest.topics import ensure_topics
from streams.models.population import RFM_BOUNDARIES
from streams.models.registry import PROBABILITY_MODEL, ModelRegistry
from streams.state.profiles import connect_redis


async def _timed_until_caught_up(
    settings: Settings, group: str, total: int, proc: asyncio.subprocess.Process
) -> float:
    """Events/s from the first committed progress to zero lag."""
    first: tuple[float, int] | None = None
    while True:
        lag = sum((await group_lag(settings, group, settings.input_topics)).values())
        now = time.monotonic()
        done = total - lag
        if first is None and done > 0:
            first = (now, done)
        if lag == 0 and first is not None:
            elapsed = now - first[0]
            return (total - first[1]) / elapsed if elapsed > 0 else float("nan")
        if proc.returncode is not None:
            raise RuntimeError(f"{proc} exited with {proc.returncode}")
        await asyncio.sleep(0.1)


async def _start(settings: Settings, argv: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", *argv,
        env=settings.subprocess_env(
            CRM_WEB_PORT=str(free_port()),
            CRM_LEARNER_ENABLED=str(settings.learner_enabled).lower(),
        ),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _run_process(
    settings: Settings, argv: list[str], group: str, total: int, *, learner: bool = False
) -> float:
    """Events/s of the process ``python -m argv``; with ``learner``, a ``crm-score learner``
    process runs beside it for the same time."""
    procs = [await _start(settings, ["crm_score", "learner", "-l", "warn"])] if learner else []
    procs.append(await _start(settings, argv))
    try:
        return await _timed_until_caught_up(settings, group, total, procs[-1])
    finally:
        for proc in reversed(procs):
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()


async def raw_consume(settings: Settings, total: int) -> float:
    consumer = AIOKafkaConsumer(
        *settings.input_topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
        fetch_max_bytes=16 << 20,
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    try:
        seen, start = 0, 0.0
        while seen < total:
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            if batch and not start:
                start = time.monotonic()
            for messages in batch.values():
                for m in messages:
                    orjson.loads(m.value)
                seen += len(messages)
        return total / (time.monotonic() - start)
    finally:
        await consumer.stop()


async def quix_peer(settings: Settings, total: int) -> float:
    """Events/s of the quix-streams peer (bench/quix_peer.py), its state in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="quix-state-") as state_dir:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.quix_peer", f"quix{uuid.uuid4().hex[:8]}",
            str(total), state_dir,
            env=settings.subprocess_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await proc.communicate()
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"bench.quix_peer exited with {proc.returncode}; is the bench extra in?")
    return float(orjson.loads(out.splitlines()[-1])["events_per_second"])


def _model_for(
    messages: Iterable[SimulatedMessage], as_of: datetime
) -> tuple[ProbabilityModel, RfmBoundaries]:
    """BG/NBD + Gamma-Gamma and RFM boundaries from the history's final profiles (in memory)."""
    parser = EventParser()
    profiles: dict[str, Profile] = {}
    for message in messages:
        try:
            event = parser.parse(message.value, message.kind, as_of)
        except EventRejected:
            continue
        current = profiles.get(event.customer_id, Profile())
        profiles[event.customer_id] = apply_delta(current, delta_for(event, {"USD": 1.0}))
    sketch = QuintileSketch()
    for profile in profiles.values():
        sketch.update(rfm(profile, as_of))
    model = fit_from_profiles(profiles.values(), as_of)
    cut = high_value_cut(model, list(profiles.values()), 0.2)
    return replace(model, high_value_clv=cut), sketch.boundaries(1, as_of)


async def _publish(settings: Settings, models: tuple[ProbabilityModel, RfmBoundaries]) -> None:
    client = connect_redis(settings)
    try:
        registry = ModelRegistry(client, settings.redis_key_prefix)
        version = await registry.reserve_version(PROBABILITY_MODEL)
        payload = replace(models[0], version=str(version)).to_json()
        await registry.publish(PROBABILITY_MODEL, payload, {}, version=version)
        await registry.publish(RFM_BOUNDARIES, models[1].model_dump_json().encode(), {})
    finally:
        await client.aclose()


async def _empty_training_topic(settings: Settings) -> None:
    """Delete what earlier runs wrote to crm.training (the input topics are shared by runs)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        topic = settings.topic("training")
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends = await consumer.end_offsets(partitions)
        await admin.delete_records({tp: RecordsToDelete(end) for tp, end in ends.items()})
    finally:
        await consumer.stop()
        await admin.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    tag = uuid.uuid4().hex[:8]
    config = SimulationConfig.ending_at(
        datetime.now(UTC), days=args.days, customers=args.customers, seed=args.seed
    )
    simulation = simulate(config)
    # Replay mode up to the history's end: the run finishes on event time alone, without
    # waiting for the wall clock to let the last minute of events through.
    base = Settings().model_copy(
        update={
            "topic_prefix": f"bench{tag}.",
            "partitions": args.partitions,
            "clock_mode": "replay",
            "replay_until": max(m.event_time for m in simulation) + timedelta(seconds=1),
            "learner_enabled": args.learner == "worker",
        }
    )
    await ensure_topics(base)
    total = len(simulation)
    await produce_messages(base, simulation)

    runs: dict[str, list[float]] = {"raw_aiokafka": [], "faust_noop": [], "pipeline": []}
    if not args.no_quix:
        runs["quix_peer"] = []
    if args.probability:
        runs["pipeline_with_models"] = []
        model = _model_for(simulation, config.end)
    last_pipeline: Settings | None = None
    separate = args.learner == "process"
    for _ in range(args.runs):
        runs["raw_aiokafka"].append(await raw_consume(base, total))
        noop = base.model_copy(update={"app_id": f"noop{uuid.uuid4().hex[:8]}"})
        runs["faust_noop"].append(
            await _run_process(noop, ["bench.noop_faust", "worker", "-l", "warn"],
                               f"{noop.app_id}-noop", total)
        )  # fmt: skip
        if not args.no_quix:
            runs["quix_peer"].append(await quix_peer(base, total))
        last_pipeline = base.model_copy(
            update={
                "app_id": f"pipe{uuid.uuid4().hex[:8]}",
                "redis_key_prefix": f"b{uuid.uuid4().hex[:8]}",
            }
        )
        await _empty_training_topic(base)  # each run's learner learns that run's examples only
        runs["pipeline"].append(
            await _run_process(last_pipeline, ["crm_score", "worker", "-l", "warn"],
                               f"{last_pipeline.app_id}.ingest", total, learner=separate)
        )  # fmt: skip
        if args.probability:
            scored = base.model_copy(
                update={
                    "app_id": f"prob{uuid.uuid4().hex[:8]}",
                    "redis_key_prefix": f"b{uuid.uuid4().hex[:8]}",
                }
            )
            await _publish(scored, model)
            await _empty_training_topic(base)
            runs["pipeline_with_models"].append(
                await _run_process(scored, ["crm_score", "worker", "-l", "warn"],
                                   f"{scored.app_id}.ingest", total, learner=separate)
            )  # fmt: skip
    medians = {name: round(statistics.median(values)) for name, values in runs.items()}
    assert last_pipeline is not None
    memory: dict[str, Any] = dict(
        await profile_and_seen_per_customer(last_pipeline, sorted(simulation.truth)[:500])
    )
    counted = await all_keys_per_customer(last_pipeline, simulation.truth)
    memory["all_keys"] = counted.pop("all_keys")
    return {
        "events": total,
        "customers": args.customers,
        "partitions": args.partitions,
        "learner": args.learner,
        "runs": {name: [round(v) for v in values] for name, values in runs.items()},
        "median_events_per_second": medians,
        "ratios": _ratios(medians),
        "redis_bytes_per_customer": {k: round(v, 1) for k, v in memory.items()},
        "redis_all_keys": counted,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }


def _ratios(medians: Mapping[str, float]) -> dict[str, float]:
    """Each pipeline's median rate over the no-op Faust agent's and the quix peer's."""
    out = {}
    for ours in ("pipeline", "pipeline_with_models"):
        for peer in ("faust_noop", "quix_peer"):
            if ours in medians and peer in medians:
                out[f"{ours}_vs_{peer}"] = round(medians[ours] / medians[peer], 3)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--probability",
        action="store_true",
        help="also run with published models: P(alive)/CLV (BG/NBD + Gamma-Gamma), RFM segments",
    )
    parser.add_argument(
        "--learner",
        choices=("process", "worker", "off"),
        default="process",
        help="where the churn learner runs: its own process beside the worker (default), inside "
        "the worker (CRM_LEARNER_ENABLED=true), or not at all",
    )
    parser.add_argument("--no-quix", action="store_true", help="leave out the quix-streams peer")
    print(orjson.dumps(asyncio.run(main(parser.parse_args())), option=orjson.OPT_INDENT_2).decode())
