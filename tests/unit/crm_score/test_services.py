"""Local services: clear errors instead of stack traces, PID tracking that cannot hit strangers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_core.errors import ServiceError
from crm_core.settings import Settings
from crm_score.services import LocalKafka, LocalRedis
from crm_score.services._process import ManagedProcess, ensure_port_free


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_port_names_the_setting_to_change(listening_port: int) -> None:
    with pytest.raises(ServiceError, match="CRM_KAFKA_BOOTSTRAP") as caught:
        ensure_port_free("127.0.0.1", listening_port, "Kafka", "CRM_KAFKA_BOOTSTRAP")
    assert f"127.0.0.1:{listening_port} is already in use" in str(caught.value)


def test_kafka_up_refuses_a_taken_port(listening_port: int, tmp_path: Path) -> None:
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{listening_port}", services_dir=tmp_path / "services"
    )
    with pytest.raises(ServiceError, match="already in use"):
        LocalKafka(settings).up()


def test_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(ServiceError, match="Java 17\\+ is needed"):
        LocalKafka(Settings(services_dir=tmp_path))._java()


def test_missing_maven_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match="Maven \\(mvn\\) is needed"):
        LocalKafka(Settings(services_dir=tmp_path)).fetch()


def test_remote_addresses_are_refused() -> None:
    with pytest.raises(ServiceError, match="not local"):
        _ = LocalKafka(Settings(kafka_bootstrap="kafka.example:9092")).port
    with pytest.raises(ServiceError, match="not this machine"):
        _ = LocalRedis(Settings(redis_url="redis://cache.example:6379/0")).port


def test_a_stale_pid_file_is_ignored_and_never_signalled(tmp_path: Path) -> None:
    # A PID file pointing at a live process that is not ours (this test's python).
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # A stale PID names an established process: wait until its exec finished (Popen can
        # return while the child is still mid-exec, with an empty /proc/<pid>/cmdline).
        deadline = time.monotonic() + 10
        while not Path(f"/proc/{stranger.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the stranger process never finished exec"
            time.sleep(0.01)
        process = ManagedProcess("kafka", tmp_path / "k.pid", tmp_path / "k.log", "kafka.Kafka")
        (tmp_path / "k.pid").write_text(f"{stranger.pid}\n")
        assert process.pid() is None
        assert not process.stop()
        assert stranger.poll() is None  # still alive: we did not signal it
        assert not (tmp_path / "k.pid").exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_start_and_stop_track_exactly_the_started_process(tmp_path: Path) -> None:
    process = ManagedProcess("sleeper", tmp_path / "s.pid", tmp_path / "s.log", "sleeper-marker")
    pid = process.start(
        [sys.executable, "-c", "import time, sys; time.sleep(60)", "sleeper-marker"], tmp_path
    )
    assert process.pid() == pid
    assert process.stop(timeout=5)
    assert process.pid() is None
    assert not process.stop()
