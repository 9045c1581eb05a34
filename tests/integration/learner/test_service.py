"""The churn learner service against the real Kafka and Redis: learning and publishing, resuming
after a SIGKILL, dead letters, drift alerts, and one leader at a time."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client import CollectorRegistry

from crm_core.settings import Settings
from schemas import Alert, AlertType, DeadLetter, TrainingExample
from scorers.churn_model import ChurnScorer
from streams.ingest.metrics import LearnerMetrics
from streams.ingest.quarantine import Quarantine
from streams.ingest.topics import ensure_topics
from streams.learner.service import LearnerService
from streams.learner.state import Checkpoint, CheckpointStore
from streams.models.registry import CHURN_MODEL, ModelRegistry
from tests.integration.harness import WorkerProcess, read_topic

pytestmark = pytest.mark.integration
T = TypeVar("T")
LOCK_TTL = 2.0
START = datetime(2026, 1, 5, tzinfo=UTC)


def make_examples(
    n: int, *, start: int = 0, invert_after: int | None = None, seed: int = 7
) -> list[TrainingExample]:
    """Examples whose label follows a noisy linear rule of four features (inverted from
    ``invert_after`` on)."""
    rng = random.Random(seed + start)
    out = []
    for i in range(start, start + n):
        f = [rng.uniform(-1, 1) for _ in range(4)]
        churns = 2.5 * f[0] - 1.5 * f[1] + 0.5 * f[2] + rng.gauss(0, 0.3) > 0
        if invert_after is not None and i >= invert_after:
            churns = not churns
        snapshot_at = START + timedelta(hours=i)
        out.append(
            TrainingExample(
                customer_id=f"c-{i % 97}",
                snapshot_at=snapshot_at,
                resolved_at=snapshot_at + timedelta(days=90),
                horizon_days=90,
                label=1 if churns else 0,
                features={f"f{k}": v for k, v in enumerate(f)},
                idempotency_key=f"churn:c-{i % 97}:{snapshot_at.isoformat()}",
            )
        )
    return out


def wire(examples: Iterable[TrainingExample]) -> list[tuple[bytes, bytes]]:
    return [(e.customer_id.encode(), e.to_json_bytes()) for e in examples]


async def produce(settings: Settings, messages: Iterable[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(settings.topic("training"), value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 45
) -> T:
    """Poll ``probe`` until ``done`` holds; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = await probe()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s; last value: {value!r}")
        await asyncio.sleep(0.1)
        value = await probe()
    return value


@pytest.fixture
async def settings(isolated_settings: Settings) -> Settings:
    s = isolated_settings.model_copy(
        update={"learner_publish_every": 100, "learner_publish_seconds": 60.0}
    )
    await ensure_topics(s)
    return s


@pytest.fixture
async def cleanup(
    settings: Settings, redis_client: aioredis.Redis
) -> AsyncIterator[list[LearnerService]]:
    """Services to stop and the test's keys to delete afterwards."""
    services: list[LearnerService] = []
    yield services
    for service in services:
        await service.stop()
    pattern = f"{settings.redis_key_prefix}:*"
    keys = [k async for k in redis_client.scan_iter(match=pattern, count=10_000)]
    if keys:
        await redis_client.delete(*keys)


async def start_learner(settings: Settings, services: list[LearnerService]) -> LearnerService:
    service = LearnerService(settings, LearnerMetrics(CollectorRegistry()), lock_ttl=LOCK_TTL)
    services.append(service)
    await service.start()
    return service


def current_n(registry: ModelRegistry) -> Callable[[], Awaitable[int | None]]:
    async def probe() -> int | None:
        current = await registry.current(CHURN_MODEL)
        return None if current is None else int(current.metadata["n_examples"])

    return probe


def sample(service: LearnerService, name: str) -> float | None:
    return service.metrics.registry.get_sample_value(name)


async def test_learns_and_publishes_versions(
    settings: Settings, redis_client: aioredis.Redis, cleanup: list[LearnerService]
) -> None:
    n = 650
    await produce(settings, wire(make_examples(n)))
    service = await start_learner(settings, cleanup)
    registry = ModelRegistry(redis_client, settings.redis_key_prefix)
    # 6 versions by count (every 100); the last 50 are published when the service stops.
    await eventually(current_n(registry), lambda v: v == 600)
    await eventually(service.health, lambda h: h["n_examples"] == n)
    await service.stop()
    current = await registry.current(CHURN_MODEL)
    assert current is not None
    meta = current.metadata
    assert meta["n_examples"] == n and meta["kind"] == settings.churn_model_kind
    assert meta["metrics"]["n"] == n
    assert sum(meta["published_at_offsets"].values()) == n
    assert len(await registry.versions(CHURN_MODEL)) == 5  # the registry keeps the newest 5
    scorer = ChurnScorer.from_bytes(current.payload)
    assert scorer.n_examples == n
    assert sample(service, "crm_churn_examples_learned_total") == n
    assert sample(service, "crm_churn_model_version") == current.version
    log_loss = service.metrics.registry.get_sample_value(
        "crm_churn_prequential_log_loss", {"window": "cumulative"}
    )
    assert log_loss == pytest.approx(meta["metrics"]["log_loss"])


async def test_sigkill_then_restart_learns_every_example_once(
    settings: Settings, redis_client: aioredis.Redis, cleanup: list[LearnerService], tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"learner_publish_every": 250})
    first, second = make_examples(1130), make_examples(1370, start=1130)
    rng = random.Random(3)
    resent_first = rng.sample(first, 60)  # re-sent while the first learner runs
    resent_second = rng.sample(first + second, 120)  # and after the restart
    await produce(settings, wire(first + resent_first))

    proc = LearnerProcess(settings, str(tmp_path / "learner.log"))
    await proc.start()
    try:
        health = await eventually(proc.health, lambda h: h.get("n_examples") == len(first), 60)
    finally:
        await proc.kill()  # SIGKILL: no graceful checkpoint
    registry = ModelRegistry(redis_client, settings.redis_key_prefix)
    store = CheckpointStore(
        redis_client, registry.key(CHURN_MODEL, "epoch"), registry.key(CHURN_MODEL, "checkpoint")
    )
    killed = await store.load()
    assert killed is not None
    checkpointed = killed.n_examples
    assert checkpointed == 1000 < health["n_examples"]  # 130 learned examples were lost with it

    await produce(settings, wire(second + resent_second))
    service = await start_learner(settings, cleanup)  # takes over once the lock expires
    unique = len(first) + len(second)
    total = len(first) + len(resent_first) + len(second) + len(resent_second)
    health = await eventually(service.health, lambda h: sum(h["offsets"].values()) == total)
    assert health["n_examples"] == unique
    await service.stop()
    current = await registry.current(CHURN_MODEL)
    assert current is not None
    assert current.metadata["n_examples"] == unique
    assert current.metadata["metrics"]["n"] == unique
    assert ChurnScorer.from_bytes(current.payload).n_examples == unique
    final = await store.load()
    assert final is not None
    assert final.n_examples == unique and sum(final.offsets.values()) == total
    # It re-read from the checkpoint: the 130 again, and skipped every re-sent copy it read
    # (all of the later ones, and those of the first ones that came after the checkpoint).
    assert sample(service, "crm_churn_examples_learned_total") == unique - checkpointed
    skipped = sample(service, "crm_churn_duplicates_skipped_total")
    assert skipped is not None and 120 <= skipped <= 180


async def test_malformed_messages_are_dead_lettered(
    settings: Settings, cleanup: list[LearnerService]
) -> None:
    good = make_examples(80)
    bad_label = orjson.loads(good[0].to_json_bytes()) | {"label": 2, "idempotency_key": "x"}
    messages = [
        *wire(good[:40]),
        (b"c-1", b"{not json"),
        (b"c-1", orjson.dumps(bad_label)),
        *wire(good[40:]),
    ]
    await produce(settings, messages)
    service = await start_learner(settings, cleanup)
    await eventually(service.health, lambda h: h["n_examples"] == len(good))
    letters = [DeadLetter.from_json_bytes(v) for v in await read_topic(settings, "deadletter", 2)]
    assert sorted(d.reason for d in letters) == ["not_json", "schema_violation"]
    assert all(d.source_topic == settings.topic("training") for d in letters)
    schema = next(d for d in letters if d.reason == "schema_violation")
    assert "label" in schema.message
    assert orjson.loads(schema.original_value())["label"] == 2
    await service.stop()
    assert sample(service, "crm_training_deadletters_total") == 2


async def test_a_dead_letter_the_topic_refuses_is_quarantined_and_learning_goes_on(
    settings: Settings, redis_client: aioredis.Redis, cleanup: list[LearnerService]
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        limit = {"max.message.bytes": "2048"}
        topic = ConfigResource(ConfigResourceType.TOPIC, settings.topic("deadletter"), limit)
        await admin.alter_configs([topic])
        for _ in range(100):  # the broker applies a new topic config shortly after the answer
            described = await admin.describe_configs(
                [ConfigResource(topic.resource_type, topic.name)]
            )
            configs = {entry[0]: entry[1] for entry in described[0].resources[0][4]}
            if configs.get("max.message.bytes") == "2048":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the dead-letter topic never showed max.message.bytes=2048")
        await asyncio.sleep(1)  # the answer comes from the broker's metadata: let it apply too
    finally:
        await admin.close()
    good = make_examples(60)
    refused = b"x" * 3000  # not JSON; its dead letter is over 4 KB
    await produce(settings, [*wire(good[:30]), (b"c-1", refused), *wire(good[30:])])
    service = await start_learner(settings, cleanup)
    await eventually(service.health, lambda h: h["n_examples"] == len(good))
    await service.stop()  # checkpoints: every output, the refused dead letter included, is done

    registry = ModelRegistry(redis_client, settings.redis_key_prefix)
    store = CheckpointStore(
        redis_client, registry.key(CHURN_MODEL, "epoch"), registry.key(CHURN_MODEL, "checkpoint")
    )
    final = await store.load()
    assert final is not None and final.n_examples == len(good)
    entries = await Quarantine(redis_client, settings.redis_key_prefix, 10).entries()
    assert len(entries) == 1 and isinstance(entries[0]["dead_letter"], dict), entries
    letter = DeadLetter.model_validate(entries[0]["dead_letter"])
    assert (letter.reason, letter.source_topic) == ("not_json", settings.topic("training"))
    assert letter.value_size == len(refused) and refused.startswith(letter.original_value())
    assert sample(service, "crm_training_deadletters_quarantined_total") == 1


async def test_inverted_rule_raises_a_drift_alert(
    settings: Settings, cleanup: list[LearnerService]
) -> None:
    await produce(settings, wire(make_examples(6000, invert_after=3000)))
    service = await start_learner(settings, cleanup)
    await eventually(service.health, lambda h: h["n_examples"] == 6000, 60)
    alerts = [Alert.from_json_bytes(v) for v in await read_topic(settings, "alerts", 1)]
    assert alerts, "no model_drift alert"
    assert all(a.alert_type is AlertType.MODEL_DRIFT and a.customer_id is None for a in alerts)
    after = [a for a in alerts if int(a.idempotency_key.rsplit(":", 1)[1]) > 3000]
    assert after, [a.idempotency_key for a in alerts]
    assert all(a.idempotency_key.startswith("model_drift:churn:") and a.reasons for a in alerts)
    # Which metric moved by the first detection after the flip depends on the publish cadence
    # (seconds, under load); the log loss has risen by one of the detections after it.
    reasons = [r for a in after for r in a.reasons]
    assert any("prequential log loss rose from" in r for r in reasons), reasons
    assert after[0].details["metrics"]["n"] == int(after[0].idempotency_key.rsplit(":", 1)[1])
    assert sample(service, "crm_model_drift_detections_total") == len(alerts)


async def test_only_one_leader_learns_and_the_other_takes_over(
    settings: Settings, redis_client: aioredis.Redis, cleanup: list[LearnerService]
) -> None:
    await produce(settings, wire(make_examples(500)))
    a, b = await asyncio.gather(start_learner(settings, cleanup), start_learner(settings, cleanup))
    health = await eventually(
        lambda: asyncio.gather(a.health(), b.health()),
        lambda hs: any(h["n_examples"] == 500 for h in hs),
    )
    leaders = [h["leader"] for h in health]
    assert sorted(leaders) == [False, True]
    leader, follower = (a, b) if leaders[0] else (b, a)
    assert (await follower.health())["n_examples"] is None
    assert sample(follower, "crm_churn_examples_learned_total") == 0
    await leader.stop()  # releases the lock: the follower resumes from the checkpoint
    lock = await redis_client.get(f"{settings.redis_key_prefix}:{{lock:learner}}")
    assert lock in (None, follower._lock.token.encode())
    taken = await eventually(follower.health, lambda h: h["leader"], 10)
    assert taken["n_examples"] == 500
    await produce(settings, wire(make_examples(20, start=500)))
    await eventually(follower.health, lambda h: h["n_examples"] == 520)
    assert sample(follower, "crm_churn_examples_learned_total") == 20


async def test_a_fenced_off_leader_cannot_overwrite_the_checkpoint(
    settings: Settings, redis_client: aioredis.Redis, cleanup: list[LearnerService]
) -> None:
    registry = ModelRegistry(redis_client, settings.redis_key_prefix)
    store = CheckpointStore(
        redis_client, registry.key(CHURN_MODEL, "epoch"), registry.key(CHURN_MODEL, "checkpoint")
    )
    stalled = await store.new_epoch()  # a leader that stalled past its lease...
    successor = await store.new_epoch()  # ...while the next one took over
    assert await store.save(successor, Checkpoint(b"new", {0: 5}, "t", 5))
    assert not await store.save(stalled, Checkpoint(b"old", {0: 9}, "t", 9))
    assert await store.load() == Checkpoint(b"new", {0: 5}, "t", 5)


class LearnerProcess(WorkerProcess):
    """`run_learner` in a subprocess (the learner-only Faust worker), killable with SIGKILL."""

    async def start(self) -> None:
        code = (
            "from crm_core.settings import Settings\n"
            "from streams.runtime.learner_worker import run_learner\n"
            f"run_learner(Settings(), loglevel='warning', lock_ttl={LOCK_TTL})\n"
        )
        env = self.settings.subprocess_env(
            CRM_WEB_PORT=str(self.web_port),
            CRM_LEARNER_PUBLISH_EVERY=str(self.settings.learner_publish_every),
            CRM_LEARNER_PUBLISH_SECONDS=str(self.settings.learner_publish_seconds),
        )
        with open(self.log_path, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )

    async def health(self) -> dict[str, Any]:  # type: ignore[override]
        """/health, or {} while the web server is not up yet (fails if the process died)."""
        if self.proc is not None and self.proc.returncode is not None:
            raise AssertionError(f"the learner exited:\n{self.log_tail()}")
        try:
            return dict(await asyncio.to_thread(WorkerProcess.health, self))
        except OSError:
            return {}
