"""Start, find and stop one detached local server process, tracked by a PID file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from crm_core.errors import ServiceError

__all__ = ["ManagedProcess", "ensure_port_free", "free_port", "wait_until"]

#: Servers this process started (they outlive it; the list only lets us reap them here).
_STARTED: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a child's web server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ManagedProcess:
    """A server we start detached and later stop by the PID we recorded.

    ``marker`` must appear in the process's command line; it guards against stopping an unrelated
    process that reused a stale PID.
    """

    name: str
    pid_file: Path
    log_file: Path
    marker: str

    def pid(self) -> int | None:
        """The PID of our running process, or None (a stale PID file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except (FileNotFoundError, ProcessLookupError):
            cmdline = b""
        else:
            if not cmdline and not _is_zombie(pid):
                return pid  # mid-exec (Java's launcher re-executes itself): nothing to read yet
        if self.marker.encode() not in cmdline or _is_zombie(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> int:
        """Start ``argv`` detached (own session), output appended to the log; record its PID."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        _STARTED.append(proc)  # detached on purpose; kept so it is reaped, not warned about
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM our process, SIGKILL it after ``timeout``; True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        for proc in _STARTED:
            if proc.pid == pid:
                proc.poll()
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the log, for error messages."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log written)"


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    if _is_zombie(pid):
        with contextlib.suppress(ChildProcessError):  # our own child: reap it
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def ensure_port_free(host: str, port: int, what: str, setting: str) -> None:
    """Raise a ServiceError naming the setting to change if something listens on ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, port)) == 0:
            raise ServiceError(
                f"{what} cannot start: {host}:{port} is already in use by another process. "
                f"Stop that process or choose another port with {setting}."
            )


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool]
) -> float:
    """Poll ``check`` until it is true; seconds waited. Fails fast if ``alive`` turns false."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        if not alive():
            raise ServiceError(f"{what} exited while starting")
        time.sleep(0.2)
    raise ServiceError(f"{what} did not become ready within {timeout:.0f} s")
