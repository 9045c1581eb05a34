"""Fault tests that restart the servers: the Kafka broker, and Redis (then wipe it and
`crm-score rebuild`). They run against a private Kafka and Redis started for this module on
free ports with their own data directory, never the shared ones other tests use.

Each ends with the profiles equal to a batch recomputation and the alert states, due-index and
alert idempotency keys equal to a clean run's (see :mod:`tests.integration.histories`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_core.settings import Settings
from crm_score.rebuild import RebuildError, rebuild_state
from tests.integration.harness import WorkerProcess, wait_caught_up
from tests.integration.histories import (
    assert_matches_clean,
    assert_state_matches,
    consumed_at_least,
    publish_models,
    read_outcome,
    standard_fault_run,
)
from tests.integration.private_services import PrivateServices

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def private(base_settings: Settings) -> Iterator[PrivateServices]:
    """Kafka + Redis of this module's own; stopped (by PID) whatever the tests did. Their data
    lives outside pytest's temporary directories, which concurrent pytest runs prune."""
    root = Path(tempfile.mkdtemp(prefix="crm-faults-"))
    services = PrivateServices(base_settings, root)
    try:
        services.up()
        yield services
    finally:
        services.down()
        shutil.rmtree(root, ignore_errors=True)


async def test_kafka_restart_mid_stream_worker_reconnects(
    base_settings: Settings,
    private: PrivateServices,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    run = await standard_fault_run(base_settings, private.settings, tmp_path)
    history, reference, settings = run.history, run.reference, run.settings
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    try:
        await worker.start()
        await consumed_at_least(worker, len(history.messages) // 4)
        away = await private.restart_kafka()
        assert worker.proc is not None and worker.proc.returncode is None, worker.log_tail()
        await wait_caught_up(settings, [worker], timeout=180)  # no manual action in between
        assert worker.proc.returncode is None, "the worker exited instead of reconnecting"
    finally:
        await worker.stop()
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    print(f"\nKafka away {away:.1f} s; {outcome.repeats()} repeated alerts (same key)")


async def test_redis_restart_mid_stream_then_wipe_and_rebuild(
    base_settings: Settings,
    private: PrivateServices,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_LEARNER_ENABLED", "false")
    run = await standard_fault_run(base_settings, private.settings, tmp_path)
    history, reference, settings = run.history, run.reference, run.settings
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    try:
        await worker.start()
        await consumed_at_least(worker, len(history.messages) // 4)
        away = await private.restart_redis()  # SIGTERM: Redis writes its AOF out and exits
        await wait_caught_up(settings, [worker], timeout=180)
        assert worker.proc is not None and worker.proc.returncode is None, worker.log_tail()
    finally:
        await worker.stop()
    outcome = await read_outcome(settings, history)
    assert_matches_clean(outcome, reference, history)
    retries = worker.log_tail(200_000).count("retrying in")
    print(f"\nRedis away {away:.1f} s; {retries} retries logged")

    # All Redis state gone: the models are published again (they are not in the topics), then
    # the rebuild replays the topics from the start and must reach the same state.
    await private.wipe_redis()
    await publish_models(settings, history)
    report = await rebuild_state(settings, until=history.until, progress=False, give_up_after=180)
    rebuilt = await read_outcome(settings, history, alerts=False)
    assert_state_matches(rebuilt, reference, history)
    assert set(rebuilt.claimed.values()) == {"1"}, "a rebuild claims alerts as published"
    assert report.messages == len(history.messages)
    print(f"rebuild: {report.to_dict()}")
    # It refuses to replay over existing state (applied events would be skipped, not walked).
    with pytest.raises(RebuildError, match="profiles exist"):
        await rebuild_state(settings, until=history.until, progress=False)
