"""The end of ``crm-score demo``: a worker is left serving the query API and the ops page on the
demo's (caught-up) namespace, and an admin key is made to try them with."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from crm_core.settings import Settings
from streams.api.auth import manage_keys
from streams.api.policy import Principal

__all__ = ["demo_access", "stop_previous_demo"]


def stop_previous_demo(pid_file: Path) -> None:
    """Stop the worker an earlier demo left serving (its pid is in ``pid_file``)."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(pid_file.read_text().strip())
        if b"crm_score\x00worker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            raise ProcessLookupError(pid)  # that pid is someone else's now
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):  # until it exited and freed the web port
            time.sleep(0.1)
            os.kill(pid, 0)
    pid_file.unlink(missing_ok=True)


def _serve(settings: Settings, log_path: Path, pid_file: Path) -> int:
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "crm_score", "worker", "-l", "warn"],
            env=settings.subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,  # outlives the demo
        )  # fmt: skip
    pid_file.write_text(f"{worker.pid}\n")
    return worker.pid


async def demo_access(settings: Settings, log_path: Path, pid_file: Path) -> list[str]:
    """Start a worker that keeps serving, create a demo admin key, and say how to use both."""
    pid = await asyncio.to_thread(_serve, settings, log_path, pid_file)
    key = await manage_keys(settings, lambda keys: keys.create(Principal("", "admin")))
    base = f"http://{settings.web_host}:{settings.web_port}"
    return [
        f"ops page:    {base}/ops",
        f"query API:   {base}/api/openapi.json; with the demo admin key, e.g.",
        f"  curl -H 'Authorization: Bearer {key}' {base}/api/segments",
        f"  curl -H 'Authorization: Bearer {key}' {base}/api/customers/cust-000001",
        f"  curl -H 'Authorization: Bearer {key}' {base}/api/value-groups",
        f"  curl -H 'Authorization: Bearer {key}' '{base}/api/cross-sell/rules?limit=5'",
        f"a worker keeps serving them (pid {pid}; stop it with `kill {pid}`, the next demo does)",
    ]
