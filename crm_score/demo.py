"""``crm-score demo``: a worker, a simulated shop through the real pipeline, and a summary."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from crm_core.settings import Settings
from crm_score.demo_processes import (
    start_learner,
    start_worker,
    stop,
    wait_caught_up,
    wait_for_versions,
)
from crm_score.produce import produce_messages
from crm_score.simulate import CustomerTruth, SimulationConfig, simulate
from scorers.probability import ProbabilityModel
from scorers.quintiles import RfmBoundaries
from scorers.rfm import rfm
from scorers.segments import load_segments
from scorers.value_groups import VALUE_GROUPS
from streams.api.demo import demo_access, stop_previous_demo
from streams.ingest.topics import all_topics, ensure_topics
from streams.models.population import fit_population
from streams.state.keys import Layout
from streams.state.profiles import RedisProfileStore, connect_redis

__all__ = ["DemoOptions", "run_demo"]

#: Share of the history (in time) the model is fitted on before the rest is scored.
_FIT_FRACTION = 0.6
_ECHOED_PER_TYPE = 3


@dataclass(frozen=True)
class DemoOptions:
    """Size of the demo (the defaults give ~210k events in about two minutes here)."""

    customers: int = 5000
    days: float = 365.0
    seed: int = 1
    malformed_fraction: float = 0.005
    duplicate_fraction: float = 0.01
    #: Share of orders that start an injected purchase anomaly (so the demo shows some).
    anomaly_fraction: float = 0.003


def demo_settings(settings: Settings) -> Settings:
    """The demo's own namespace, so it never touches a real deployment's topics or keys; its
    worker leaves the churn learner to a process of its own, as a deployment should."""
    return settings.model_copy(
        update={
            "topic_prefix": "demo.",
            "redis_key_prefix": "demo",
            "app_id": "crm-demo",
            "learner_enabled": False,
        }
    )


async def reset_namespace(settings: Settings) -> None:
    """Delete the namespace's topics and Redis keys from an earlier run."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_client_options()
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in all_topics(settings) if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
        for _ in range(100):
            if not set(await admin.list_topics()) & set(doomed):
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    client = connect_redis(settings)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{settings.redis_key_prefix}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


async def _read_from_start(settings: Settings, name: str) -> AIOKafkaConsumer:
    """A started consumer of the topic called ``name`` from its first message, in no group."""
    consumer = AIOKafkaConsumer(
        settings.topic(name),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **settings.kafka_client_options(),
    )
    await consumer.start()
    return consumer


async def count_dead_letters(settings: Settings, expected: int) -> Counter[str]:
    """Dead letters by reason, reading the topic until ``expected`` arrived (or 20 s)."""
    consumer = await _read_from_start(settings, "deadletter")
    reasons: Counter[str] = Counter()
    try:
        deadline = time.monotonic() + 20
        while sum(reasons.values()) < expected and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                reasons.update(orjson.loads(m.value)["reason"] for m in messages if m.value)
    finally:
        await consumer.stop()
    return reasons


async def run_demo(settings: Settings, options: DemoOptions, echo: Any = print) -> dict[str, Any]:
    """Run the demo end to end; returns the summary it printed."""
    demo = demo_settings(settings)
    pid_file = settings.services_dir / "demo-worker.pid"
    stop_previous_demo(pid_file)  # an earlier demo's worker, left serving the ops page
    echo(f"resetting the demo namespace ({demo.topic_prefix}* topics, {demo.redis_key_prefix}:*)")
    await reset_namespace(demo)
    await ensure_topics(demo)
    log_path = settings.services_dir / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    learner = await start_learner(demo, log_path.with_name("demo-learner.log"))
    log_path.write_bytes(b"")
    worker: asyncio.subprocess.Process | None = None
    alerts: list[dict[str, Any]] = []
    tail_consumer = await _read_from_start(demo, "alerts")
    tail = asyncio.ensure_future(_tail_alerts(tail_consumer, alerts, echo))
    try:
        config = SimulationConfig.ending_at(
            datetime.now(UTC) - timedelta(minutes=5),
            days=options.days,
            customers=options.customers,
            seed=options.seed,
            malformed_fraction=options.malformed_fraction,
            duplicate_fraction=options.duplicate_fraction,
            anomaly_fraction=options.anomaly_fraction,
        )
        simulation = simulate(config)
        ordered = sorted(simulation, key=lambda m: m.event_time)
        split = ordered[int(len(ordered) * _FIT_FRACTION)].event_time
        echo(f"simulating {options.customers} customers over {options.days:g} days: "
             f"{len(simulation)} messages to Kafka")  # fmt: skip
        started = time.monotonic()
        first = [m for m in ordered if m.event_time < split]
        # Replay mode, one worker per part: a part is complete when the watermark reaches its
        # last event, whatever the wall clock says. (In live mode a partition quiet for
        # CRM_IDLE_ADVANCE_SECONDS takes its watermark to the wall clock, which the pause for
        # the fit did: the rest of the history then arrived late, scored without alerts.)
        worker = await start_worker(demo, first[-1].event_time, log_path)
        report = await produce_messages(demo, first, progress=True)
        await wait_caught_up(demo, worker)
        await stop(worker)
        client = connect_redis(demo)
        try:
            model, boundaries = await fit_population(demo, client, as_of=split)
        finally:
            await client.aclose()
        echo(f"fitted on the first {_FIT_FRACTION:.0%} of the history (to {split:%Y-%m-%d}): "
             f"model v{model.version}, RFM boundaries v{boundaries.version}; "
             "a worker scores the rest with them, alerts included")  # fmt: skip
        rest = [m for m in ordered if m.event_time >= split]
        report2 = await produce_messages(demo, rest, progress=True)
        # Started once the rest is on the topics: a replay worker with nothing left to read
        # would take its watermark straight to its end.
        worker = await start_worker(demo, ordered[-1].event_time, log_path)
        await wait_for_versions(demo, int(model.version), boundaries.version, worker)
        await wait_caught_up(demo, worker)
        elapsed = time.monotonic() - started
        await _read_to_end(tail_consumer, tail)
    finally:
        tail.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tail
        await tail_consumer.stop()
        for process in (worker, learner):
            if process is not None:
                await stop(process)
    counts = simulation.summary()
    reasons = await count_dead_letters(demo, counts["malformed"])
    truth = simulation.truth
    buyers = sorted((t for t in truth.values() if t.orders >= 2), key=lambda t: -t.orders)
    churned = [t for t in buyers if t.dropout_at is not None]
    picks = [buyers[0], *churned[:1], buyers[len(buyers) // 2]] if buyers else []
    by_type = dict(Counter(a["alert_type"] for a in alerts).most_common())
    value_groups = await _value_groups(demo)
    summary = {
        "messages": report.total + report2.total,
        "seconds_produce_to_caught_up": round(elapsed, 1),
        "customers": len(truth),
        "duplicates_sent": counts["duplicate"],
        "dead_letters_by_reason": dict(reasons.most_common()),
        "probability_model": {
            "version": model.version,
            "bgnbd": {k: round(v, 4) for k, v in asdict(model.bgnbd).items()},
            "customers": model.n_customers,
        },
        "rfm_quintile_cuts": boundaries.model_dump(
            mode="json", include={"recency_days", "frequency", "monetary_minor"}
        ),
        "sample_profiles": await _sample_profiles(demo, model, boundaries, picks),
        "alerts_by_type": by_type,
        "example_alerts": _examples(alerts),
        "value_groups": value_groups,
        "anomalies_injected": len(simulation.anomalies),
        "worker_log": str(log_path),
    }
    echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    echo("alerts by type:  " + _counts_line(by_type))
    groups = {VALUE_GROUPS[g]: n for g, n in value_groups.items()}
    echo("value x risk groups (latest snapshot per customer):  " + _counts_line(groups))
    for line in await demo_access(demo, log_path, pid_file):  # a worker left serving the API
        echo(line)
    return summary


async def _tail_alerts(consumer: AIOKafkaConsumer, into: list[dict[str, Any]], echo: Any) -> None:
    """Read the alerts topic as the worker publishes; echo the first few of each type."""
    while True:
        for messages in (await consumer.getmany(timeout_ms=500)).values():
            for message in messages:
                if message.value is None:
                    continue
                alert = orjson.loads(message.value)
                into.append(alert)
                same = sum(1 for a in into if a["alert_type"] == alert["alert_type"])
                if same <= _ECHOED_PER_TYPE:
                    echo(_alert_line(alert))


async def _read_to_end(consumer: AIOKafkaConsumer, tail: asyncio.Future[None]) -> None:
    """Until the tail has read every alert published so far (the worker is caught up, so its
    alerts are on the topic: it publishes a round's alerts before committing its offsets). On
    a busy machine the tail can be minutes behind the worker."""
    ends = await consumer.end_offsets(list(consumer.assignment()))
    deadline = time.monotonic() + 300
    while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
        if tail.done() or time.monotonic() > deadline:
            tail.result()  # the tail's own error, if it failed
            raise RuntimeError("the alerts tail did not reach the end of the alerts topic in 300 s")
        await asyncio.sleep(0.2)


async def _value_groups(settings: Settings) -> dict[str, int]:
    """Customers per value x risk group, from the query API's index (one ZCARD each)."""
    layout = Layout(settings.redis_key_prefix)
    client = connect_redis(settings)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for group in VALUE_GROUPS:
                pipe.zcard(layout.value_group(group))
            counts = await pipe.execute()
    finally:
        await client.aclose()
    return dict(zip(VALUE_GROUPS, map(int, counts), strict=True))


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counts.items()) or "none"


def _alert_line(alert: dict[str, Any]) -> str:
    when = alert["event_time"][:10]
    reasons = "; ".join(alert["reasons"])
    return f"  alert {alert['alert_type']:<18} {alert['customer_id']} at {when}: {reasons}"


def _examples(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """The first alert of each type, trimmed to what a reader needs."""
    examples: dict[str, Any] = {}
    for alert in alerts:
        if alert["alert_type"] not in examples:
            keep = ("customer_id", "event_time", "idempotency_key", "reasons", "scores")
            examples[alert["alert_type"]] = {k: alert[k] for k in keep}
    return examples


async def _sample_profiles(
    settings: Settings,
    model: ProbabilityModel,
    boundaries: RfmBoundaries,
    picks: list[CustomerTruth],
) -> dict[str, Any]:
    segments = load_segments()
    client = connect_redis(settings)
    store = RedisProfileStore(client, settings)
    now = datetime.now(UTC)
    out: dict[str, Any] = {}
    try:
        for truth in picks:
            profile = await store.get_profile(truth.customer_id)
            if profile is None:
                continue
            scores = rfm(profile, now)
            odds = model.score(profile, now)
            quintiles = boundaries.score_rfm(scores)
            out[truth.customer_id] = {
                "rfm_scores": quintiles,
                "segment": None if quintiles is None else segments.segment_for(*quintiles),
                "recency_days": None
                if scores.recency_days is None
                else round(scores.recency_days, 1),
                "frequency": scores.frequency,
                "monetary": scores.monetary_minor / 100,
                "complaints": profile.complaints,
                "emails_opened": profile.messages_opened,
                "p_alive": None if odds is None else round(odds.p_alive, 3),
                "expected_purchases_90d": None
                if odds is None
                else round(odds.expected_purchases_90d, 2),
                "clv": None if odds is None or odds.clv is None else round(odds.clv / 100, 2),
                "truly_dropped_out": truth.dropout_at is not None,
            }
    finally:
        await client.aclose()
    return out
