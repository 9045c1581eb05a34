"""A round's checkpoint (streams.ingest.checkpoint): save, then publish, then commit, each once;
a step that fails leaves the round where it was, and nothing after it happens.

Redis and Kafka are stood in for by plain recorders (the integration tests run the real
thing: tests/integration/faults/ kill and refuse them under a running worker); the
recovery bookkeeping is the real one, it only builds commands."""

from __future__ import annotations

import asyncio
import doctest
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry, Counter

import streams.ingest.round_runner
from crm_core.errors import StateStoreError
from streams.ingest.checkpoint import (
    CheckpointOutOfOrder,
    RoundCheckpoint,
    RoundOutcome,
    Stage,
)
from streams.ingest.records import BatchResult
from streams.round.messages import OutputMessage
from streams.round.scorer import ScoredRound
from streams.state.recovery import claim_confirmation
from streams.state.retry import RedisSteps
from tests.unit.streams.ingest.fakes import FakeCommits, FakeOutputs, FakeStore, Journal

T = TypeVar("T")


def _message(partition: int, key: bytes) -> OutputMessage:
    return OutputMessage(partition, key, b'{"k": "' + key + b'"}')


def _outcome() -> RoundOutcome:
    """A round on partition 0: two alerts (one already published by an earlier run), a
    snapshot, a training example and a dead letter."""
    scored = ScoredRound(
        snapshots=[_message(0, b"s1")],
        alerts=[
            ("c1", "churn_risk:c1:1", _message(0, b"a1")),
            ("c2", "win_back:c2:1", _message(0, b"a2")),
        ],
        timer_checkpoints=3,
        examples=[_message(0, b"x1")],
    )
    result = BatchResult(consumed=4)
    result.dead_letter(_message(0, b"d1"), "invalid_json")
    commits = {TopicPartition("crm.purchase", 0): 17}
    return RoundOutcome(scored, [], None, {0: 1000.0}, commits, result, 0.01)


def _steps(stopping: bool = False) -> RedisSteps:
    errors = Counter("redis_errors", "by kind", ["kind"], registry=CollectorRegistry())
    event = asyncio.Event()
    if stopping:
        event.set()
    return RedisSteps(errors, event, logging.getLogger("test"))


async def _once(call: Callable[[], Awaitable[T]]) -> T:
    return await call()


async def test_a_round_is_saved_then_published_then_committed() -> None:
    journal: Journal = []
    store, outputs = FakeStore(journal, [True, False]), FakeOutputs(journal)
    commits = FakeCommits(journal)
    outcome = _outcome()
    checkpoint = RoundCheckpoint(outcome, store, _once, outputs)

    stages = [checkpoint.stage]
    await checkpoint.save()
    stages.append(checkpoint.stage)
    assert journal == ["save"]  # nothing leaves before Redis holds the round
    await checkpoint.publish()
    stages.append(checkpoint.stage)
    await checkpoint.commit(commits)
    stages.append(checkpoint.stage)
    assert stages == [Stage.PENDING, Stage.SAVED, Stage.PUBLISHED, Stage.COMMITTED]

    assert journal == [
        "save",
        "record_alerts",
        "publish scores",
        "publish training",
        "publish alerts",
        "publish deadletter",
        "commit",
    ]
    assert store.saved == [{0: 1000.0}]
    # Only the alert claimed now is published, counted and shown to the query API.
    assert outputs.sent["alerts"] == [_message(0, b"a1")]
    assert store.recent == [("c1", "churn_risk", _message(0, b"a1").value)]
    assert dict(outcome.result.alerts_by_type) == {"churn_risk": 1}
    assert outputs.sent["scores"] == [_message(0, b"s1")]
    assert outputs.sent["training"] == [_message(0, b"x1")]
    assert outputs.sent["deadletter"] == [_message(0, b"d1")]
    assert outcome.result.timer_checkpoints == 3
    # The commit waits for every delivery of the round, with the round's offsets.
    [(deliveries, offsets)] = commits.added
    assert deliveries == outputs.deliveries and len(deliveries) == 4
    assert offsets == {TopicPartition("crm.purchase", 0): 17}


async def test_the_published_alert_is_confirmed_once_acknowledged() -> None:
    journal: Journal = []
    store = FakeStore(journal, [True, False])
    checkpoint = RoundCheckpoint(_outcome(), store, _once, FakeOutputs(journal))
    await checkpoint.save()
    await checkpoint.publish()
    confirms = store.recovery.confirm_commands()
    # Set only while the claims exist (an erasure or retention removal may have deleted them).
    assert claim_confirmation("t:{c1}:al", "churn_risk:c1:1") in confirms
    assert not any("c2" in str(c) for c in confirms)  # not published by this round


async def test_a_rebuild_saves_and_commits_but_publishes_nothing() -> None:
    journal: Journal = []
    commits = FakeCommits(journal)
    checkpoint = RoundCheckpoint(_outcome(), FakeStore(journal, [False, False]), _once, None)
    await checkpoint.save()
    await checkpoint.publish()
    await checkpoint.commit(commits)
    assert journal == ["save", "commit"]
    assert commits.added == [([], {TopicPartition("crm.purchase", 0): 17})]


async def test_a_refused_save_is_retried_before_anything_is_published() -> None:
    journal: Journal = []
    store, outputs = FakeStore(journal, [True, True], refusals=2), FakeOutputs(journal)
    steps = _steps()
    checkpoint = RoundCheckpoint(_outcome(), store, steps.run, outputs)
    await checkpoint.save()
    await checkpoint.publish()
    assert journal[:4] == ["save", "save", "save", "record_alerts"]
    assert steps.failing is None  # the save went through in the end


async def test_a_save_refused_while_stopping_publishes_and_commits_nothing() -> None:
    journal: Journal = []
    store, outputs = FakeStore(journal, [True, False], refusals=1), FakeOutputs(journal)
    commits = FakeCommits(journal)
    checkpoint = RoundCheckpoint(_outcome(), store, _steps(stopping=True).run, outputs)
    with pytest.raises(StateStoreError):
        await checkpoint.save()
    assert checkpoint.stage is Stage.PENDING
    with pytest.raises(CheckpointOutOfOrder, match="needs stage 'saved'"):
        await checkpoint.publish()
    with pytest.raises(CheckpointOutOfOrder, match="needs stage 'published'"):
        await checkpoint.commit(commits)
    assert journal == ["save"]
    assert outputs.sent == {} and commits.added == []


async def test_a_publish_kafka_refuses_is_not_committed() -> None:
    journal: Journal = []
    outputs = FakeOutputs(journal, refuse="alerts")
    commits = FakeCommits(journal)
    checkpoint = RoundCheckpoint(_outcome(), FakeStore(journal, [True, False]), _once, outputs)
    await checkpoint.save()
    with pytest.raises(KafkaTimeoutError):
        await checkpoint.publish()
    assert checkpoint.stage is Stage.SAVED
    with pytest.raises(CheckpointOutOfOrder):
        await checkpoint.commit(commits)
    assert commits.added == []
    assert "publish deadletter" not in journal


async def test_each_step_runs_once() -> None:
    journal: Journal = []
    checkpoint = RoundCheckpoint(
        _outcome(), FakeStore(journal, [True, False]), _once, FakeOutputs(journal)
    )
    await checkpoint.save()
    with pytest.raises(CheckpointOutOfOrder, match="needs stage 'pending'"):
        await checkpoint.save()
    assert journal == ["save"]


def test_the_walk_limit_example_holds() -> None:
    assert doctest.testmod(streams.ingest.round_runner, raise_on_error=True).attempted > 0
