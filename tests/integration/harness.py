"""Run real `crm-score worker` processes against the test's isolated topics and Redis prefix."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from crm_core.settings import Settings
from crm_score.services import free_port
from schemas import Event, EventParser
from scorers.profile import FIELD_CODES, Profile
from streams.ingest.lag import ingest_lag
from streams.state.profiles import RedisProfileStore, connect_redis


def free_port_run(count: int, *, bus: bool) -> int:
    """The first of ``count`` consecutive free ports (and their +10000 bus ports if ``bus``)."""
    for _ in range(200):
        first = free_port() if not bus else 20000 + int.from_bytes(os.urandom(2)) % 30000
        ports = [first + i for i in range(count)]
        ports += [port + 10000 for port in ports] if bus else []
        if all(_bindable(port) for port in ports):
            return first
    raise RuntimeError(f"no run of {count} free ports found")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def settings_env(settings: Settings, web_port: int | None = None) -> dict[str, str]:
    """Environment for a subprocess that must run with ``settings`` (web on ``web_port``)."""
    return settings.subprocess_env(CRM_WEB_PORT=str(web_port or free_port()))


class WorkerProcess:
    """One `crm-score worker` subprocess; output goes to a log file for failure messages."""

    def __init__(self, settings: Settings, log_path: str) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.web_port = free_port()

    async def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crm_score", "worker", "-l", "info",
            env=settings_env(self.settings, self.web_port),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    async def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def wait_ready(self, timeout: float = 30) -> None:
        """Until /health shows assigned partitions: the worker (and Faust's own consumer,
        which joins first) finished starting, so a stop does not cut a group join short."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc is not None:
            if self.proc.returncode is not None:
                return
            try:
                health = await asyncio.to_thread(self.health)
                if health.get("assigned_partitions"):
                    return
            except OSError:
                pass
            await asyncio.sleep(0.2)

    async def wait_health(
        self, condition: Callable[[dict[str, object]], bool], what: str, timeout: float = 90
    ) -> None:
        """Poll /health until ``condition`` holds; AssertionError naming ``what`` (with the
        log's tail) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition(await asyncio.to_thread(self.health)):
                    return
            except OSError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"{what}:\n{self.log_tail()}")

    def health(self) -> dict[str, object]:
        """The worker's /health page."""
        url = f"http://127.0.0.1:{self.web_port}/health"
        with urllib.request.urlopen(url, timeout=5) as response:
            data: dict[str, object] = orjson.loads(response.read())
            return data

    def health_status(self) -> tuple[int, dict[str, object]]:
        """The worker's /health page with its HTTP status (503 is an answer here)."""
        try:
            return 200, self.health()
        except urllib.error.HTTPError as exc:
            data: dict[str, object] = orjson.loads(exc.read())
            return exc.code, data

    async def wait_status(
        self, condition: Callable[[int, dict[str, object]], bool], what: str, timeout: float = 90
    ) -> None:
        """Poll /health until ``condition(status, page)`` holds, as :meth:`wait_health`."""

        def met() -> bool:
            return condition(*self.health_status())

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await asyncio.to_thread(met):
                    return
            except OSError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"{what}:\n{self.log_tail()}")

    def metrics(self) -> str:
        """The worker's /metrics page (Prometheus text)."""
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read()).decode()

    async def stop(self) -> None:
        """SIGTERM once the worker finished starting, and wait for a clean exit."""
        if self.proc is not None and self.proc.returncode is None:
            await self.wait_ready()
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                await self.kill()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-chars:].decode(errors="replace")
        except FileNotFoundError:
            return ""


async def wait_caught_up(
    settings: Settings, workers: Iterable[WorkerProcess], timeout: float = 120
) -> None:
    """Wait until the ingest group has committed every input message; fail if workers died."""
    workers = list(workers)
    deadline = time.monotonic() + timeout
    lag: dict[object, int] = {}
    while time.monotonic() < deadline:
        lag = dict(await ingest_lag(settings))
        if lag and sum(lag.values()) == 0:
            return
        dead = [w for w in workers if w.proc is not None and w.proc.returncode is not None]
        if dead and len(dead) == len(workers):
            raise AssertionError(f"the worker exited:\n{dead[0].log_tail()}")
        await asyncio.sleep(0.5)
    raise AssertionError(f"worker did not catch up within {timeout} s: lag {lag}")


async def read_profiles(settings: Settings, customer_ids: Iterable[str]) -> dict[str, Profile]:
    client = connect_redis(settings)
    store = RedisProfileStore(client, settings)
    try:
        found = {cid: await store.get_profile(cid) for cid in customer_ids}
    finally:
        await client.aclose()
    return {cid: p for cid, p in found.items() if p is not None}


async def read_topic(
    settings: Settings, name: str, expected: int, timeout: float = 30
) -> list[bytes]:
    """All values of a topic, reading until ``expected`` arrived or ``timeout`` passed."""
    return [value for _, value in await read_records(settings, name, expected, timeout)]


async def read_records(
    settings: Settings, name: str, expected: int, timeout: float = 30
) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every record of a topic that has a value, reading until ``expected``
    arrived or ``timeout`` passed."""
    consumer = AIOKafkaConsumer(
        settings.topic(name),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[tuple[bytes | None, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            fetched = [m for ms in batch.values() for m in ms]
            records += [(m.key, m.value) for m in fetched if m.value is not None]
    finally:
        await consumer.stop()
    return records


def valid_events(values: Iterable[tuple[str, bytes | None, bytes]]) -> list[Event]:
    """Parse what a test produced (kind, key, value), keeping the valid events (oracle input)."""
    from datetime import UTC, datetime, timedelta

    parser = EventParser(max_bytes=64 * 1024, max_future_skew=timedelta(minutes=5))
    now = datetime.now(UTC)
    out = []
    for kind, key, raw in values:
        try:
            event = parser.parse(raw, kind, now)
        except Exception:
            continue
        if key == event.customer_id.encode():
            out.append(event)
    return out


def metric_values(worker: WorkerProcess, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric ``name`` on the worker's /metrics page: (labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(worker.metrics())
        for sample in family.samples
        if sample.name == name
    ]


def http_get(url: str) -> tuple[int, bytes]:
    """GET ``url``: its status and body, also for an error status (blocking; use a thread)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


async def run_cli(settings: Settings, *args: str) -> tuple[int, str]:
    """Run ``crm-score ARGS`` with the settings in its environment: exit code and output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crm_score", *args,
        env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def wait_for_churn_model(worker: WorkerProcess, timeout: float = 60) -> int:
    """The churn model version the worker's /health reports once it has loaded one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            version = (await asyncio.to_thread(worker.health)).get("churn_model_version")
        except OSError:
            version = None
        if isinstance(version, int):
            return version
        await asyncio.sleep(0.5)
    raise AssertionError(f"the worker never loaded a churn model:\n{worker.log_tail()}")


async def write_profiles(client: aioredis.Redis, prefix: str, profiles: Sequence[Profile]) -> None:
    """Store profiles as the worker would, with plain HSET of the short field codes."""
    async with client.pipeline(transaction=False) as pipe:
        for i, profile in enumerate(profiles):
            fields = [(FIELD_CODES[k], v) for k, v in profile.to_dict().items() if v is not None]
            pipe.hset(f"{prefix}:{{c-{i}}}:p", items=[item for pair in fields for item in pair])
        await pipe.execute()
