"""`crm-score services up` on running services is a no-op (the tests run inside `services run`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crm_core.settings import Settings

pytestmark = pytest.mark.integration


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm_score", "services", *args],
        env=settings.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_second_up_is_a_no_op(base_settings: Settings) -> None:
    before = _cli(base_settings, "status")
    assert before.stdout.count(" running ") == 2, before.stdout + before.stderr
    again = _cli(base_settings, "up")
    assert again.returncode == 0, again.stderr
    assert "redis already running" in again.stdout
    assert "kafka already running" in again.stdout
    after = _cli(base_settings, "status")
    assert after.stdout == before.stdout  # same PIDs, nothing restarted
