"""Slots moved between Redis Cluster masters mid-stream, then the state wiped and rebuilt.

On the session's private 3-master cluster (``CRM_REDIS_URL=redis+cluster://...``), the shared
Kafka and a fresh prefix: the standard history replayed while 600 slots move to another master
and back (MOVED / ASK on the hot path) ends with the profiles equal to the batch oracle and the
alert states, due-index and alert keys equal to the clean run on one Redis
(:func:`tests.integration.histories.assert_matches_clean`: replay on a cluster = live on one
Redis), no alert published twice; then every key is wiped from every master and
``rebuild_state`` reaches that state again. Effectively-once after SIGKILLs on the cluster is
``test_sigkill_mid_stream_and_restart[redis-cluster]`` (tests/integration/worker/).
The three-run replay test (~150 s) stays single-node: CI's budget for cluster tests is ~3 min.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crm_core.settings import Settings
from crm_score.rebuild import rebuild_state
from crm_score.services import LocalRedisCluster
from tests.integration.harness import WorkerProcess, wait_caught_up
from tests.integration.histories import (
    assert_matches_clean,
    assert_state_matches,
    consumed_at_least,
    publish_models,
    read_outcome,
    standard_fault_run,
)
from tests.integration.keyspace import wipe

pytestmark = pytest.mark.integration


async def test_slots_moved_mid_stream_then_wipe_and_rebuild(
    base_settings: Settings,
    cluster_settings: Settings,
    redis_cluster: LocalRedisCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    run = await standard_fault_run(base_settings, cluster_settings, tmp_path)
    history, reference, settings = run.history, run.reference, run.settings
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    first, second, _ = redis_cluster.ports
    try:
        await worker.start()
        await consumed_at_least(worker, len(history.messages) // 4)
        # 600 of the first master's slots go to the second and come back, keys and all, while
        # the worker writes to them.
        there = await asyncio.to_thread(redis_cluster.reshard, 600, first, second)
        back = await asyncio.to_thread(redis_cluster.reshard, 600, second, first)
        await wait_caught_up(settings, [worker], timeout=180)
        assert worker.proc is not None and worker.proc.returncode is None, worker.log_tail()
    finally:
        await worker.stop()
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    assert outcome.repeats() == 0, "the worker did not restart, so no alert may be repeated"
    log = worker.log_tail(200_000)
    redirected = log.count("MOVED") + log.count("ASK")
    print(f"\n{there}; {back}; {redirected} redirects logged")

    # All the deployment's keys gone from every master, then rebuilt from the topics.
    await wipe(settings, keep_suppression=False)
    await publish_models(settings, history)
    report = await rebuild_state(settings, until=history.until, progress=False, give_up_after=180)
    rebuilt = await read_outcome(settings, history, alerts=False)
    assert_state_matches(rebuilt, reference, history)
    # Every message read (more when a rebalance under load made it read some twice).
    assert report.messages >= len(history.messages), report
