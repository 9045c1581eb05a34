"""Helpers of the fault tests: a seeded history with fixed models, a clean reference run, the
final outcome of a run (profiles, alert states, due-index, alert keys), and private Kafka and
Redis servers that a test may restart or wipe without touching the shared ones.

Every fault test ends the same way: the final profiles equal a batch recomputation from the
events (field by field), and the alert states, the due-index and the set of alert idempotency
keys equal those of a clean run of the same history with the same published model versions
(repeats on the topic are allowed, but only with the same key and body).
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.simulate import SimulatedMessage, SimulationConfig, simulate
from scorers.probability import ProbabilityModel, fit_from_profiles
from scorers.probability_batch import high_value_cut
from scorers.profile import Profile
from scorers.quintiles import QuintileSketch, RfmBoundaries
from scorers.rfm import rfm
from scorers.timeline import CustomerState
from streams.models.population import RFM_BOUNDARIES
from streams.models.registry import PROBABILITY_MODEL, ModelRegistry
from streams.state.profiles import connect_redis
from streams.state.records import ProfileRecords
from tests.integration.harness import (
    WorkerProcess,
    read_profiles,
    valid_events,
    wait_caught_up,
)
from tests.oracle import recompute_profiles
from tests.paths import REPO

LATENESS = timedelta(days=2)
#: Alerts left out of the comparison with the clean run: cross-sell suggestions come from
#: population-wide co-occurrence counts as they stand when an order is scored, so they depend
#: on how rounds interleave customers, not only on each customer's own events.
_NOT_REPLAYABLE = ("cross_sell:",)
_REPO = REPO


@dataclass(frozen=True)
class History:
    """A seeded simulated history, its end, the models every run publishes, the oracle."""

    messages: list[SimulatedMessage]
    until: datetime
    model: ProbabilityModel
    bounds: RfmBoundaries
    expected: dict[str, Profile]

    @property
    def customers(self) -> set[str]:
        return {m.key.decode() for m in self.messages if m.key}


def make_history(customers: int, seed: int, malformed: float = 0.005) -> History:
    """A year of ``customers`` customers' events in event-time order, with some malformed
    messages and re-sent duplicates, plus the models fitted once on its batch recomputation."""
    config = SimulationConfig(
        customers=customers,
        days=365,
        seed=seed,
        start=datetime(2025, 1, 1, tzinfo=UTC),
        malformed_fraction=malformed,
        duplicate_fraction=0.01,
    )
    messages = sorted(simulate(config), key=lambda m: m.event_time)
    expected = recompute_profiles(valid_events((m.kind, m.key, m.value) for m in messages))
    end = max(m.event_time for m in messages)
    profiles = list(expected.values())
    model = fit_from_profiles(profiles, end)
    model = replace(model, high_value_clv=high_value_cut(model, profiles, 0.2))
    sketch = QuintileSketch()
    for profile in profiles:
        sketch.update(rfm(profile, end))
    return History(messages, end + timedelta(seconds=1), model, sketch.boundaries(1, end), expected)


def fault_settings(base: Settings, history: History, **update: Any) -> Settings:
    """Fresh topics, consumer group and Redis prefix, replay clock ending at the history's end."""
    tag = uuid.uuid4().hex[:10]
    return base.model_copy(
        update={
            "topic_prefix": f"t{tag}.",
            "redis_key_prefix": f"t{tag}",
            "app_id": f"crm-test-{tag}",
            "clock_mode": "replay",
            "allowed_lateness_seconds": LATENESS.total_seconds(),
            "replay_until": history.until,
            **update,
        }
    )


async def consumed_at_least(worker: WorkerProcess, count: int, timeout: float = 90) -> None:
    """Until the worker has consumed ``count`` messages (mid-stream, for a fault to fall)."""

    def consumed(health: dict[str, object]) -> bool:
        n = health.get("consumed")
        return isinstance(n, int) and n >= count

    await worker.wait_health(consumed, f"the worker did not consume {count} messages", timeout)


async def owns_all(worker: WorkerProcess, settings: Settings, timeout: float = 90) -> None:
    """Until the worker holds partition p of every input topic, for every p."""

    def every(health: dict[str, object]) -> bool:
        assigned = health.get("assigned_partitions")
        return isinstance(assigned, list) and len(assigned) == 3 * settings.partitions

    await worker.wait_health(every, "the worker did not take every partition", timeout)


async def publish_models(settings: Settings, history: History) -> None:
    """Publish the history's probability model and RFM boundaries (fixed versions: alerts
    depend on them, so a fault run and the clean run must score with the same ones)."""
    client = connect_redis(settings)
    try:
        registry = ModelRegistry(client, settings.redis_key_prefix)
        version = await registry.reserve_version(PROBABILITY_MODEL)
        payload = replace(history.model, version=str(version)).to_json()
        await registry.publish(PROBABILITY_MODEL, payload, {}, version=version)
        version = await registry.reserve_version(RFM_BOUNDARIES)
        bounds = history.bounds.model_copy(update={"version": version})
        await registry.publish(
            RFM_BOUNDARIES, bounds.model_dump_json().encode(), {}, version=version
        )
    finally:
        await client.aclose()


@dataclass(frozen=True)
class Outcome:
    """What a run left behind (``where``: its topic prefix, for failure messages)."""

    profiles: dict[str, Profile]
    states: dict[str, CustomerState]
    due: dict[int, dict[str, float]]
    alerts: list[tuple[str, bytes]]  # (idempotency key, body) in topic order, repeats kept
    claimed: dict[str, str]  # idempotency key -> its claim in Redis ("1": published)
    where: str = ""
    scored: frozenset[str] = frozenset()  # event ids with a score snapshot on crm.scores
    examples: frozenset[str] = frozenset()  # idempotency keys of crm.training examples

    @property
    def alert_keys(self) -> set[str]:
        return {key for key, _ in self.alerts if not key.startswith(_NOT_REPLAYABLE)}

    def claimed_keys(self) -> set[str]:
        return {key for key in self.claimed if not key.startswith(_NOT_REPLAYABLE)}

    def repeats(self) -> int:
        return len(self.alerts) - len({key for key, _ in self.alerts})


async def read_outcome(settings: Settings, history: History, alerts: bool = True) -> Outcome:
    profiles = await read_profiles(settings, history.customers)
    client = connect_redis(settings)
    prefix = settings.redis_key_prefix
    try:
        states = {}
        for cid in profiles:
            raw = await ProfileRecords(client).get(f"{prefix}:{{{cid}}}:p", "as")
            states[cid] = CustomerState.from_bytes(raw)
        claimed = {}
        for cid in profiles:
            for key, value in (await client.hgetall(f"{prefix}:{{{cid}}}:al")).items():
                claimed[_text(key)] = _text(value)
        due = {}
        for p in range(settings.partitions):
            members = await client.zrange(f"{prefix}:{{due:{p}}}", 0, -1, withscores=True)
            due[p] = {_text(pair[0]): float(pair[1]) for pair in members}
    finally:
        await client.aclose()
    published, scored, examples = [], set(), set()
    if alerts:
        for value in await read_all(settings, "alerts"):
            published.append((orjson.loads(value)["idempotency_key"], value))
        for value in await read_all(settings, "scores"):
            snapshot = orjson.loads(value)
            if snapshot.get("event_id"):
                scored.add(snapshot["event_id"])
        examples = {
            orjson.loads(v)["idempotency_key"] for v in await read_all(settings, "training")
        }
    return Outcome(
        profiles,
        states,
        due,
        published,
        claimed,
        settings.topic_prefix,
        frozenset(scored),
        frozenset(examples),
    )


async def read_all(settings: Settings, name: str) -> list[bytes]:
    """Every value in a topic, up to its end offsets when called."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic(name), p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[bytes] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=1000)
            values += [m.value for msgs in batch.values() for m in msgs if m.value is not None]
        return values
    finally:
        await consumer.stop()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def assert_profiles_match(outcome: Outcome, history: History) -> None:
    """Final profiles equal the batch recomputation, field by field."""
    expected = history.expected
    assert set(outcome.profiles) == set(expected), "customers differ from the recomputation"
    diffs = []
    for cid, want in expected.items():
        got = outcome.profiles[cid]
        diffs += [
            (cid, name, getattr(got, name), getattr(want, name))
            for name in Profile._fields
            if getattr(got, name) != getattr(want, name)
        ]
    assert not diffs, f"{len(diffs)} profile fields differ from the recomputation: {diffs[:5]}"


def assert_matches_clean(outcome: Outcome, reference: Outcome, history: History) -> None:
    """Profiles = recomputation; alert states, due-index and alert keys = the clean run's;
    a repeated alert carries the same key and the same body."""
    assert_state_matches(outcome, reference, history)
    missing = reference.alert_keys - outcome.alert_keys
    extra = outcome.alert_keys - reference.alert_keys
    assert not missing and not extra, (
        f"alert keys differ from the clean run: {len(missing)} missing, e.g. "
        f"{sorted(missing)[:3]}; {len(extra)} extra, e.g. {sorted(extra)[:3]}"
    )
    # At-least-once for the other outputs too: every event the clean run scored has a score
    # snapshot, every training example it published is there (repeats allowed).
    unscored = reference.scored - outcome.scored
    assert not unscored, (
        f"{len(unscored)} events have no score snapshot, e.g. {sorted(unscored)[:3]}"
    )
    lost = reference.examples - outcome.examples
    assert not lost, f"{len(lost)} training examples are missing, e.g. {sorted(lost)[:3]}"
    bodies: dict[str, set[bytes]] = {}
    for key, body in outcome.alerts:
        if key.startswith(_NOT_REPLAYABLE):
            continue
        bodies.setdefault(key, set()).add(_canonical(body))
    changed = [key for key, seen in bodies.items() if len(seen) > 1]
    assert not changed, f"an alert was repeated with a different body: {changed[:3]}"


def assert_state_matches(outcome: Outcome, reference: Outcome, history: History) -> None:
    """Redis only: profiles = recomputation; alert states, due-index and the claimed alert
    keys = the clean run's."""
    assert_profiles_match(outcome, history)
    missing = sorted(reference.claimed_keys() - outcome.claimed_keys())
    extra = sorted(outcome.claimed_keys() - reference.claimed_keys())
    assert not missing and not extra, (
        f"claimed alert keys differ from the clean run: {len(missing)} missing "
        f"{_by_rule(missing)}, e.g. {missing[:2]}; {len(extra)} extra {_by_rule(extra)}, "
        f"e.g. {extra[:2]} (a worker started on other code than the clean run's gives this too; "
        f"run {outcome.where!r}, clean run {reference.where!r})"
    )
    wrong_states = [c for c, s in reference.states.items() if not _close(outcome.states.get(c), s)]
    assert not wrong_states, (
        f"{len(wrong_states)} alert states differ from the clean run, e.g. {wrong_states[0]}: "
        f"{outcome.states.get(wrong_states[0])} != {reference.states[wrong_states[0]]}"
    )
    for partition, want in reference.due.items():
        got = outcome.due.get(partition, {})
        wrong = sorted(c for c in set(want) | set(got) if want.get(c) != got.get(c))
        assert not wrong, (
            f"due-index of partition {partition} differs from the clean run for "
            f"{len(wrong)} customers, e.g. {wrong[0]}: {got.get(wrong[0])} != {want.get(wrong[0])}"
        )


def _close(got: object, want: object) -> bool:
    """Equal, but floats only to 1e-5 relative: decayed activity counts are rounded at each
    step, so walking the same history in other pieces can move their 6th decimal."""
    if isinstance(got, float) and isinstance(want, float):
        return math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-5)
    if isinstance(got, tuple) and isinstance(want, tuple):
        return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want, strict=True))
    return got == want


def _by_rule(keys: list[str]) -> dict[str, int]:
    return dict(Counter(key.split(":", 1)[0] for key in keys))


def _canonical(body: bytes) -> bytes:
    def fix(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.9g}")
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return orjson.dumps(fix(orjson.loads(body)), option=orjson.OPT_SORT_KEYS)


_REFERENCES: dict[tuple[int, int, float], Outcome] = {}
#: Seconds each clean run took from ready to caught up (for throughput comparisons).
REFERENCE_SECONDS: dict[str, float] = {}
#: The history every fault test runs (small but real: ~25k messages, a year of 600 customers).
CUSTOMERS, SEED = 600, 42
_STANDARD: list[History] = []
_STANDARD_KEY = (CUSTOMERS, SEED, 0.005)


def standard_history() -> History:
    if not _STANDARD:
        _STANDARD.append(make_history(CUSTOMERS, SEED))
    return _STANDARD[0]


async def standard_reference(base: Settings, log: Path) -> Outcome:
    """The clean run of :func:`standard_history` on the shared services (once per session)."""
    return await clean_reference(base, standard_history(), _STANDARD_KEY, log)


async def clean_reference(
    base: Settings, history: History, key: tuple[int, int, float], log: Path
) -> Outcome:
    """The outcome of one clean run of ``history`` (cached for the test session)."""
    if key not in _REFERENCES:
        # A long group session: on this shared machine a big round can hold the event loop
        # past the default 10 s, and a rebalance would make the reference less than clean.
        settings = fault_settings(base, history, broker_session_timeout=45.0)
        await publish_models(settings, history)
        await produce_messages(settings, history.messages)
        worker = WorkerProcess(settings, str(log))
        await worker.start()
        try:
            await worker.wait_ready()
            started = time.monotonic()
            await wait_caught_up(settings, [worker], timeout=180)
            REFERENCE_SECONDS["standard" if key == _STANDARD_KEY else str(key)] = (
                time.monotonic() - started
            )
        finally:
            await worker.stop()
        reference = await read_outcome(settings, history)
        assert reference.repeats() == 0, "the clean run published an episode twice"
        assert_profiles_match(reference, history)
        kinds = Counter(k.split(":")[0] for k in reference.alert_keys)
        assert {"segment_changed", "win_back", "high_value_at_risk"} <= set(kinds), kinds
        _REFERENCES[key] = reference
    return _REFERENCES[key]


@dataclass(frozen=True)
class FaultRun:
    """A fault run's standard history, the clean run to compare with, and its settings."""

    history: History
    reference: Outcome
    settings: Settings


async def standard_fault_run(
    base: Settings, servers: Settings, log_dir: Path, **update: Any
) -> FaultRun:
    """The standard history and its clean run on the shared services (``base``), and settings
    for a fault run against ``servers`` (fresh names; ``update`` on top) with the models
    published and the whole history produced, ready for a worker."""
    history = standard_history()
    reference = await standard_reference(base, log_dir / "clean.log")
    settings = fault_settings(servers, history, **update)
    await publish_models(settings, history)
    await produce_messages(settings, history.messages)
    return FaultRun(history, reference, settings)
