"""One event's walk from the consumer to the alert topic: which modules it enters, how often.

The worker's own pieces run in process, as the ingest loop (:mod:`streams.ingest.service`)
calls them for one fetched record: parse, the event clock, a round submitted to Redis and
completed (walk, save, publish, commit). Redis is the real one (``CRM_REDIS_URL``, under a
fresh key prefix, deleted afterwards); Kafka is a recording producer and commit queue, so the
walk ends where the alert is handed to the producer. The event is a purchase 200 days after
the customer's first one (``--days``), so it raises a ``win_back`` alert; its partition is
caught up, so the event is released in the round that fetched it.

``sys.setprofile`` records each call into a project module (``streams``, ``scorers``,
``schemas``, ``crm_core``) from another one; consecutive frames in one module are one entry,
library frames are skipped, and so is a coroutine or generator resumed after an await. Prints
JSON: the modules entered, the entries per module, those entered more than once, the same for
the ``streams`` modules alone (the pipeline's rooms, without the scorers they call), and both
walks.

    python -m bench.event_walk
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from crm_core.settings import Settings
from schemas import example_event_dict
from streams.ingest.checkpoint import KafkaOutputs
from streams.ingest.clock import EventClock
from streams.ingest.metrics import PipelineMetrics
from streams.ingest.quarantine import Quarantine
from streams.ingest.records import Accepted, IngestStats
from streams.ingest.round_runner import RoundRunner
from streams.state.erasure import ErasedCustomers
from streams.state.profiles import RedisProfileStore, connect_redis
from streams.state.round_store import RoundStore
from tests.unit.streams.ingest.fakes import FakeCommits, FakeProducer

PROJECT = ("streams", "scorers", "schemas", "crm_core")
_LOG_APPEND_TIME = 1
_SUSPENDS = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


def _record(settings: Settings, offset: int, at: datetime, customer: str) -> Any:
    raw = example_event_dict("order_placed")
    raw.update(customer_id=customer, event_id=f"walk-{offset}", event_time=at.isoformat())
    raw.pop("contact", None)
    value = orjson.dumps(raw)
    stamp = int(at.timestamp() * 1000)
    return ConsumerRecord(
        settings.topic("purchase"), 0, offset, stamp, _LOG_APPEND_TIME, customer.encode(),
        value, None, len(customer), len(value), (),
    )  # fmt: skip


def _module(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


class Walk:
    """The project modules the profiled code entered, in order: a call into a module from
    another one (the nearest project frame below it) is an entry; calls within a module are
    not, and library frames in between are skipped."""

    def __init__(self) -> None:
        self.modules: list[str] = []
        self._started: set[FrameType] = set()  # coroutines: a resume after an await is no entry

    def profile(self, frame: FrameType, event: str, _: object) -> None:
        if event != "call":
            return
        if frame.f_code.co_flags & _SUSPENDS:
            if frame in self._started:
                return
            self._started.add(frame)
        name = _module(frame)
        if name.split(".")[0] not in PROJECT:
            return
        caller = frame.f_back
        while caller is not None and _module(caller).split(".")[0] not in PROJECT:
            caller = caller.f_back
        if caller is None or _module(caller) != name:
            self.modules.append(name)


async def _round(
    runner: RoundRunner,
    clock: EventClock[Accepted],
    outputs: KafkaOutputs,
    record: Any,
    walk: Walk | None,
) -> None:
    """One fetched record through the loop's steps (streams.ingest.service)."""
    if walk is not None:
        sys.setprofile(walk.profile)
    try:
        # A replay up to the event's time, caught up: its partition is complete there, so the
        # event leaves the clock in the round that fetched it.
        clock.replay_until = record.timestamp / 1000
        for topic in clock.topics:
            end = record.offset + 1 if topic == record.topic else 0
            clock.set_position(topic, 0, end)
            clock.set_highwater(topic, 0, end)
        wall = time.time()
        parsed = runner.processor.parse([record], datetime.now(UTC))
        late = []
        for item in parsed.accepted:
            r = item.record
            if clock.observe(r.topic, r.partition, r.offset, item.sort_key[0], item.sort_key, item, wall, None):  # fmt: skip # noqa: E501
                late.append(item)
        generation = runner.ownership.generation
        moved = set(clock.advance(wall))
        released = [x for p in sorted(moved) for x in clock.release(p)]
        submitted = await runner.submit(parsed, late, released, runner.to_sweep(moved), generation)
        await runner.complete(submitted, outputs, FakeCommits([]))
    finally:
        sys.setprofile(None)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(
        redis_key_prefix=f"walk{uuid.uuid4().hex[:8]}",
        allowed_lateness_seconds=0.0,
        clock_mode="replay",
        learner_enabled=False,
    )
    client = connect_redis(settings)
    store = RedisProfileStore(client, settings)
    rounds = RoundStore(client, store, settings)
    first = datetime(2025, 1, 1, tzinfo=UTC)
    later = first + timedelta(days=args.days)
    clock: EventClock[Accepted] = EventClock(
        settings.input_topics, 0.0, live=False, idle_after=settings.idle_advance_seconds
    )
    clock.assign([0])
    producer, metrics = FakeProducer(), PipelineMetrics()
    runner = RoundRunner(
        settings, rounds, clock, ErasedCustomers(client, settings), IngestStats(),
        metrics, asyncio.Event(),
    )  # fmt: skip
    quarantine = Quarantine(client, settings.redis_key_prefix, 10, metrics.quarantined)
    outputs = KafkaOutputs(settings, producer, producer, quarantine)
    customer = "walker"
    walk = Walk()
    try:
        await store.connect()  # as the ingest loop does before its first round
        await _round(runner, clock, outputs, _record(settings, 0, first, customer), None)
        await _round(runner, clock, outputs, _record(settings, 1, later, customer), walk)
    finally:
        keys = [
            k async for k in client.scan_iter(match=f"{settings.redis_key_prefix}:*", count=10_000)
        ]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    entries = Counter(walk.modules)
    alerts = [
        orjson.loads(v or b"{}")["alert_type"] for v in producer.values(settings.topic("alerts"))
    ]
    stages = [m for m in walk.modules if m.startswith("streams.")]
    stage_walk = [m for i, m in enumerate(stages) if i == 0 or stages[i - 1] != m]
    return {
        "alerts_published": alerts,
        "streams_walk": stage_walk,
        "streams_entered_more_than_once": {
            m: n for m, n in Counter(stage_walk).most_common() if n > 1
        },
        "modules": len(entries),
        "entries": len(walk.modules),
        "entered_more_than_once": {m: n for m, n in entries.most_common() if n > 1},
        "walk": walk.modules,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.event_walk", description=__doc__)
    parser.add_argument("--days", type=int, default=200, help="silence before the purchase")
    print(orjson.dumps(asyncio.run(main(parser.parse_args())), option=orjson.OPT_INDENT_2).decode())
