"""One Kafka broker of three killed (SIGKILL) mid-stream and started again later.

The topics are replicated three times with ``min.insync.replicas=2`` and the producers use
``acks=all``, so losing one broker must lose nothing: the run ends with the profiles equal to a
batch recomputation and the alert states, due-index and alert idempotency keys equal to a clean
run's (:mod:`tests.integration.histories`), with no alert published twice, and the outage shows in
/health (``degraded``, ``kafka_brokers``) and in ``crm_kafka_brokers_missing`` while it lasts.
The brokers are this module's own, on free ports; Redis is the shared one under a fresh prefix.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_core.settings import Settings
from crm_score.services import LocalKafkaCluster
from tests.integration.harness import WorkerProcess, metric_values, wait_caught_up
from tests.integration.histories import (
    assert_matches_clean,
    consumed_at_least,
    read_outcome,
    standard_fault_run,
)
from tests.integration.private_services import three_brokers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def replicated(base_settings: Settings) -> Iterator[tuple[Settings, LocalKafkaCluster]]:
    """Three KRaft brokers of this module's own (replication 3, min.insync.replicas 2)."""
    root = Path(tempfile.mkdtemp(prefix="crm-broker-loss-"))
    settings = three_brokers(base_settings, root)
    cluster = LocalKafkaCluster(settings)
    try:
        cluster.up()
        yield settings, cluster
    finally:
        cluster.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(900)  # three brokers and the clean run on a shared 2-core machine
async def test_one_broker_killed_mid_stream_loses_and_doubles_nothing(
    base_settings: Settings,
    replicated: tuple[Settings, LocalKafkaCluster],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    cluster_settings, cluster = replicated
    run = await standard_fault_run(base_settings, cluster_settings, tmp_path)
    history, reference, settings = run.history, run.reference, run.settings
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    victim = cluster.nodes()[0]
    try:
        await worker.start()
        await worker.wait_health(
            lambda health: health.get("kafka_brokers") == 3, "the worker never saw 3 brokers", 60
        )
        await consumed_at_least(worker, len(history.messages) // 4)
        pid = victim.process.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await worker.wait_health(
            lambda health: health.get("kafka_brokers") == 2, "the lost broker never showed", 90
        )
        seen = time.monotonic() - killed_at
        status, health = worker.health_status()
        assert health["degraded"] == ["Kafka: 1 of 3 brokers missing"], health
        assert status == 200, "one broker of three lost is degraded, not unhealthy"
        assert [value for _, value in metric_values(worker, "crm_kafka_brokers_missing")] == [1]
        await asyncio.sleep(5)  # the stream goes on without it for a while
        assert worker.proc is not None and worker.proc.returncode is None, worker.log_tail()
        await asyncio.to_thread(cluster.up)
        await worker.wait_health(
            lambda health: health.get("kafka_brokers") == 3, "the broker never came back", 120
        )
        await wait_caught_up(settings, [worker], timeout=240)
        assert worker.health()["degraded"] == []
        assert [value for _, value in metric_values(worker, "crm_kafka_brokers_missing")] == [0]
    finally:
        await worker.stop()
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    assert outcome.repeats() == 0, "the worker did not restart, so no alert may be repeated"
    print(f"\nbroker loss seen in /health after {seen:.1f} s")
