"""The demo's processes: the churn learner, workers replaying the demo's topics, and waiting
for them (caught up; scoring with given model versions)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka.errors import KafkaError, KafkaTimeoutError

from crm_core.settings import Settings
from crm_score.services import free_port
from streams.ingest.lag import ingest_lag

__all__ = ["start_learner", "start_worker", "stop", "wait_caught_up", "wait_for_versions"]


async def start_learner(settings: Settings, log_path: Path) -> asyncio.subprocess.Process:
    """``crm-score learner`` on the demo's namespace (its /health on a free port)."""
    with log_path.open("wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crm_score", "learner", "-l", "warn",
            env=settings.subprocess_env(CRM_WEB_PORT=str(free_port())),
            stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip


async def start_worker(
    settings: Settings, until: datetime, log_path: Path
) -> asyncio.subprocess.Process:
    """A worker replaying the demo's topics up to ``until`` (its log appended to ``log_path``)."""
    replay = settings.model_copy(update={"clock_mode": "replay", "replay_until": until})
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crm_score", "worker", "-l", "warn",
            env=replay.subprocess_env(), stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM ``process`` (if it still runs) and wait until it exited."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await process.wait()


async def wait_caught_up(settings: Settings, worker: asyncio.subprocess.Process) -> float:
    """Seconds until the worker's group has committed every input message."""
    start = time.monotonic()
    while True:
        try:
            lag = await ingest_lag(settings)
        except KafkaError as exc:  # e.g. a metadata timeout while the worker joins: ask again
            if not exc.retriable and not isinstance(exc, KafkaTimeoutError):
                raise
            lag = {}
        if lag and sum(lag.values()) == 0:
            return time.monotonic() - start
        if worker.returncode is not None:
            raise RuntimeError("the worker exited; see .services/demo-worker.log")
        await asyncio.sleep(0.25)


async def wait_for_versions(
    settings: Settings, model: int, boundaries: int, worker: asyncio.subprocess.Process
) -> None:
    """Until the worker's /health reports it scores with these versions."""
    url = f"http://{settings.web_host}:{settings.web_port}/health"
    for _ in range(120):
        if worker.returncode is not None:
            raise RuntimeError("the worker exited; see .services/demo-worker.log")
        try:
            health = await asyncio.to_thread(_get_json, url)
            if (health.get("probability_model_version"), health.get("rfm_boundaries_version")) == (
                model,
                boundaries,
            ):
                return
        except OSError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the worker did not load model v{model} / boundaries v{boundaries}")


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, Any] = orjson.loads(response.read())
        return data
