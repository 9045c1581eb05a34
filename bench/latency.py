"""End-to-end latency at a fixed produce rate: event produced -> its score snapshot published,
and -> the alert it raised published.

``--workers`` (default 1) ``crm-score worker`` processes in one group, in live clock mode with
``--lateness`` (default 0.5 s) of allowed lateness and ``--idle-advance`` (default: the
lateness) before an idle partition's watermark follows the wall clock, a published probability
model and RFM boundaries (so alerts fire), churn learner off. Events come from a simulated
history, re-timed as they are sent: each event's time is the wall clock at its send, so the
stream looks live. By design a score trails its event by about the allowed lateness (the
watermark is the newest event time seen minus the lateness; events wait in the reorder buffer
until it passes them); the latency measured here includes that wait. An event that arrives
after the watermark passed it is *late* (applied at once, no alerts for the past): the report
gives their share, which a small lateness raises.

Latency = Kafka timestamp of the output record (set by the worker's producer) minus the send
time of the input event (same machine clock). Scores are matched by event id; an alert by
(customer, event time in whole seconds) to the first event of that customer in that second
(event-triggered alerts only). For each rate in ``--rates`` it produces for ``--seconds`` and
reports p50/p99 (overall and per second of sending) and the output rate; a rate is
*sustained* when the workers kept up: every event scored, and the median second's p99 under
1 s (a backlog growing shows there; the last second's events wait for the idle advance, so
its p99 is high by design). Medians over ``--runs``.

    python -m bench.latency --rates 1000,5000,7500,10000 --seconds 15 --runs 3
    python -m bench.latency --rates 1000,5000 --lateness 0.02 --idle-advance 1 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.pipeline import _model_for, _publish
from crm_core.settings import Settings
from crm_score.services import free_port
from crm_score.simulate import SimulatedMessage, SimulationConfig, simulate
from streams.ingest.topics import ensure_topics


async def _wait_ready(port: int, proc: asyncio.subprocess.Process, share_of: int | None) -> None:
    """Until the worker has partitions (``share_of``: the group's total, of which this
    worker must hold only a share, so a group of several has settled)."""
    import urllib.request

    url = f"http://127.0.0.1:{port}/health"

    def read() -> bytes:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bytes(response.read())

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError("the worker exited")
        try:
            body = await asyncio.to_thread(read)
            assigned = orjson.loads(body).get("assigned_partitions") or []
            if assigned and (share_of is None or len(assigned) < share_of):
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the worker did not become ready")


async def _produce(
    settings: Settings, messages: Sequence[SimulatedMessage], rate: float, seconds: float
) -> tuple[dict[str, float], dict[tuple[str, int], float], int]:
    """Send at ``rate`` for ``seconds``, each event re-timed to its send time; returns send
    times by event id, first send time by (customer, second), and how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=1)
    await producer.start()
    sent: dict[str, float] = {}
    firsts: dict[tuple[str, int], float] = {}
    count = int(rate * seconds)
    start = time.time()
    try:
        for i, m in enumerate(messages[:count]):
            due = start + i / rate
            delay = due - time.time()
            if delay > 0.002:
                await asyncio.sleep(delay)
            event = orjson.loads(m.value)
            now = time.time()
            event["event_time"] = datetime.fromtimestamp(now, UTC).isoformat()
            await producer.send(settings.topic(m.kind), orjson.dumps(event), key=m.key)
            sent[event["event_id"]] = now
            firsts.setdefault((event["customer_id"], int(now)), now)
        await producer.flush()
    finally:
        await producer.stop()
    return sent, firsts, len(sent)


async def _outputs(settings: Settings, stop: asyncio.Event) -> dict[str, list[Any]]:
    """Every score and alert published, with its Kafka timestamp (seconds)."""
    consumer = AIOKafkaConsumer(
        settings.topic("scores"),
        settings.topic("alerts"),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"lat-{uuid.uuid4().hex[:8]}",
    )
    await consumer.start()
    out: dict[str, list[Any]] = {"scores": [], "alerts": []}
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                name = "alerts" if tp.topic == settings.topic("alerts") else "scores"
                out[name] += [(r.timestamp / 1000, r.value) for r in records]
    finally:
        await consumer.stop()
    return out


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None}
    arr = np.array(values) * 1000
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
    }


def _health(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        return dict(orjson.loads(response.read()))


async def one_run(
    base: Settings,
    messages: Sequence[SimulatedMessage],
    rate: float,
    seconds: float,
    models: Any,
    workers: int = 1,
) -> dict[str, Any]:
    settings = base.model_copy(
        update={
            "topic_prefix": f"lat{uuid.uuid4().hex[:8]}.",
            "app_id": f"lat{uuid.uuid4().hex[:8]}",
            "redis_key_prefix": f"l{uuid.uuid4().hex[:8]}",
        }
    )
    await ensure_topics(settings)
    await _publish(settings, models)
    procs = []
    stop = asyncio.Event()
    try:
        for _ in range(workers):
            port = free_port()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "crm_score", "worker", "-l", "warn",
                env=settings.subprocess_env(CRM_WEB_PORT=str(port), CRM_LEARNER_ENABLED="false"),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            procs.append((port, proc))
        for port, proc in procs:
            await _wait_ready(port, proc, None if workers == 1 else 3 * settings.partitions)
        reading = asyncio.create_task(_outputs(settings, stop))
        t0 = time.time()
        sent, firsts, count = await _produce(settings, messages, rate, seconds)
        produce_seconds = time.time() - t0
        # Let the tail through: the last events wait for the lateness + idle advance.
        await asyncio.sleep(max(2.0, 3 * settings.allowed_lateness_seconds))
        stop.set()
        out = await reading
        totals = [await asyncio.to_thread(_health, port) for port, _ in procs]
    finally:
        for _, proc in procs:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
    score_lat, alert_lat, last_score = [], [], 0.0
    by_second: dict[int, list[float]] = {}  # score latencies by the second they were sent in
    for ts, value in out["scores"]:
        snap = orjson.loads(value)
        sent_at = sent.get(snap.get("event_id") or "")
        if sent_at is not None:
            score_lat.append(ts - sent_at)
            by_second.setdefault(int(sent_at - t0), []).append(ts - sent_at)
            last_score = max(last_score, ts)
    for ts, value in out["alerts"]:
        alert = orjson.loads(value)
        if alert.get("details", {}).get("trigger") == "timer":
            continue
        at = int(datetime.fromisoformat(alert["event_time"]).timestamp())
        sent_at = firsts.get((alert["customer_id"], at))
        if sent_at is not None:
            alert_lat.append(ts - sent_at)
    scores = _percentiles(score_lat)
    per_second = [_percentiles(by_second[k])["p99_ms"] or 0.0 for k in sorted(by_second)]
    output_rate = len(score_lat) / max(1e-9, last_score - t0) if score_lat else 0.0
    return {
        "rate": rate,
        "sent": count,
        "input_rate": round(count / produce_seconds),
        "scored": len(score_lat),
        "output_rate": round(output_rate),
        "applied": sum(int(t.get("applied", 0)) for t in totals),
        "late": sum(int(t.get("late", 0)) for t in totals),  # arrived past the watermark
        "score": scores,
        "score_p99_ms_by_second": per_second,
        "score_p99_ms_median_second": statistics.median(per_second) if per_second else None,
        "alert": _percentiles(alert_lat),
        # Kept up: every event scored, and no backlog building up (the median second's p99
        # stays under a second; the last second's events wait for the idle advance).
        "sustained": bool(per_second)
        and len(score_lat) == count
        and statistics.median(per_second) < 1000,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    config = SimulationConfig.ending_at(
        datetime.now(UTC) - timedelta(days=1), days=365, customers=args.customers, seed=1
    )
    simulation = simulate(config)
    messages = sorted(simulation, key=lambda m: m.event_time)
    models = _model_for(simulation, config.end)
    base = Settings().model_copy(
        update={
            "clock_mode": "live",
            "allowed_lateness_seconds": args.lateness,
            "idle_advance_seconds": (
                args.lateness if args.idle_advance is None else args.idle_advance
            ),
            "learner_enabled": False,
        }
    )
    rates = [float(r) for r in args.rates.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.runs):
        for rate in rates:
            runs.setdefault(str(int(rate)), []).append(
                await one_run(base, messages, rate, args.seconds, models, args.workers)
            )
    summary = {}
    for key, results in runs.items():

        def med(path: tuple[str, str], results: list[dict[str, Any]] = results) -> float | None:
            values = [r[path[0]][path[1]] for r in results if r[path[0]][path[1]] is not None]
            return round(statistics.median(values), 1) if values else None

        summary[key] = {
            "score_p50_ms": med(("score", "p50_ms")),
            "score_p99_ms": med(("score", "p99_ms")),
            "score_p99_ms_median_second": round(
                statistics.median(r["score_p99_ms_median_second"] or 0.0 for r in results), 1
            ),
            "alert_p50_ms": med(("alert", "p50_ms")),
            "alert_p99_ms": med(("alert", "p99_ms")),
            "alerts_matched": sum(r["alert"]["n"] for r in results),
            "output_rate": round(statistics.median(r["output_rate"] for r in results)),
            "sustained_runs": sum(r["sustained"] for r in results),
            "late_share": round(
                sum(r["late"] for r in results) / max(1, sum(r["applied"] for r in results)), 4
            ),
        }
    sustained = [float(r) for r, s in summary.items() if s["sustained_runs"] * 2 > args.runs]
    return {
        "lateness_seconds": args.lateness,
        "workers": args.workers,
        "seconds_per_run": args.seconds,
        "runs": runs,
        "median": summary,
        "max_sustained_rate_tried": max(sustained) if sustained else None,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="1000,5000,7500,10000")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lateness", type=float, default=0.5)
    parser.add_argument(
        "--idle-advance", type=float, default=None, help="seconds (default: the lateness)"
    )
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1, help="workers in the group")
    result = asyncio.run(main(parser.parse_args()))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
