"""Soak: the SIGKILL fault test, longer. A bigger seeded history is produced at a steady rate
for ``--minutes`` while a worker is SIGKILLed at seeded random points (every 3-15 s after it
is ready) and restarted; a clean run of the same history with the same published models is
the reference. Prints JSON: kills, repeats, and whether the final profiles equal a batch
recomputation and the alert states, due-index and alert keys equal the clean run's (with the
first difference when not). Uses the shared Kafka and Redis, under fresh prefixes.

    python -m bench.soak --customers 3000 --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import orjson

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from tests.integration.harness import WorkerProcess, wait_caught_up
from tests.integration.histories import (
    assert_matches_clean,
    clean_reference,
    fault_settings,
    make_history,
    publish_models,
    read_outcome,
)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["CRM_LEARNER_ENABLED"] = "false"  # fixed model versions, as in the clean run
    logs = Path(tempfile.mkdtemp(prefix="crm-soak-"))
    base = Settings()
    history = make_history(args.customers, args.seed)
    reference = await clean_reference(
        base, history, (args.customers, args.seed, 0.005), logs / "clean.log"
    )
    settings = fault_settings(base, history, replay_until=None)
    await publish_models(settings, history)
    rate = len(history.messages) / (args.minutes * 60)
    producing = asyncio.create_task(produce_messages(settings, history.messages, rate=rate))
    rnd = random.Random(args.seed)
    worker = WorkerProcess(settings, str(logs / "killed.log"))
    kills = 0
    try:
        while not producing.done():
            await worker.start()
            await worker.wait_ready()
            await asyncio.sleep(rnd.uniform(3, 15))
            await worker.kill()
            kills += 1
        await producing
        final = settings.model_copy(update={"replay_until": history.until})
        worker = WorkerProcess(final, str(logs / "final.log"))
        await worker.start()
        await wait_caught_up(final, [worker], timeout=600)
    finally:
        await worker.stop()
    outcome = await read_outcome(settings, history)
    try:
        assert_matches_clean(outcome, reference, history)
        equal, difference = True, None
    except AssertionError as exc:
        equal, difference = False, str(exc)[:2000]
    return {
        "messages": len(history.messages),
        "customers": args.customers,
        "minutes": args.minutes,
        "sigkills": kills,
        "alerts": len(outcome.alerts),
        "repeated_alerts_same_key": outcome.repeats(),
        "equal_to_clean_run": equal,
        "difference": difference,
        "logs": str(logs),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=42)
    print(orjson.dumps(asyncio.run(main(parser.parse_args())), option=orjson.OPT_INDENT_2).decode())
