"""The worker serves the query API and the ops page: a real worker scores a small simulated
history, then an admin key reads a customer, and headless Chromium renders the ops page with
the pipeline's real numbers (a screenshot is left in ``$CRM_OPS_SCREENSHOT`` or the tmp dir)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from crm_core.settings import Settings
from crm_score.produce import produce_messages
from crm_score.simulate import SimulationConfig, simulate
from streams.api.auth import KeyStore
from streams.api.policy import Principal
from streams.models.population import refresh_rfm_boundaries
from streams.models.registry import fit_and_publish
from streams.state.keys import Layout
from tests.integration.harness import WorkerProcess, wait_caught_up, wait_for_churn_model

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _get(url: str, key: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def _chromium(*args: str) -> str:
    assert CHROMIUM is not None
    done = subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=90)
    return done.stdout


async def test_worker_serves_the_api_and_the_ops_page_renders_real_numbers(
    isolated_settings: Settings,
    redis_client: aioredis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does)")
    churn = {"churn_horizon_days": 30.0, "churn_sample_days": 10.0,
             "churn_sample_max_silence_days": 60.0, "churn_min_examples": 100,
             "learner_publish_every": 100, "learner_publish_seconds": 1.0}  # fmt: skip
    for name, value in churn.items():  # the worker subprocess reads its settings from env
        monkeypatch.setenv(f"CRM_{name.upper()}", str(value))
    settings = isolated_settings.model_copy(update=churn)
    now = datetime.now(UTC)
    history = list(simulate(SimulationConfig.ending_at(now - timedelta(days=15), days=240,
                                                       customers=300, seed=31,
                                                       malformed_fraction=0.01)))  # fmt: skip
    recent = list(simulate(SimulationConfig.ending_at(now, days=15, customers=300, seed=32)))
    worker = WorkerProcess(settings, str(tmp_path / "worker.log"))
    await worker.start()
    base = f"http://127.0.0.1:{worker.web_port}"
    try:
        await produce_messages(settings, history)
        await wait_caught_up(settings, [worker])
        await fit_and_publish(settings, redis_client)
        await refresh_rfm_boundaries(settings, redis_client)
        await wait_for_churn_model(worker)
        await asyncio.sleep(6)  # the worker follows the registry every 5 s
        await produce_messages(settings, recent)
        await wait_caught_up(settings, [worker])
        key = await KeyStore(redis_client, Layout(settings.redis_key_prefix)).create(
            Principal("", "admin")
        )
        customer = orjson.loads(recent[-1].value)["customer_id"]
        status, body = await asyncio.to_thread(_get, f"{base}/api/customers/{customer}", key)
        assert status == 200, body
        assert body["scores"] is not None and body["clv"] is not None
        assert body["segment"] and body["departments"]
        assert (await asyncio.to_thread(_get, f"{base}/api/customers/{customer}"))[0] == 401
        status, health = await asyncio.to_thread(_get, f"{base}/api/health")
        assert status == 200 and health["kafka"] and health["models"]["rfm"] is not None
        assert health["watermarks"]

        await asyncio.sleep(5)  # two ops samples at least
        _, ops = await asyncio.to_thread(_get, f"{base}/api/ops")
        dom = await asyncio.to_thread(_chromium, "--virtual-time-budget=8000", "--dump-dom",
                                      f"{base}/ops")  # fmt: skip
        shot = Path(os.environ.get("CRM_OPS_SCREENSHOT", tmp_path / "ops.png"))
        await asyncio.to_thread(_chromium, f"--screenshot={shot}", "--window-size=1280,1100",
                                "--virtual-time-budget=8000", f"{base}/ops")  # fmt: skip
    finally:
        await worker.stop()

    assert 'data-loaded="1"' in dom, dom[-2000:]
    applied = re.search(r'id="applied">([\d,]+)<', dom)
    assert applied and int(applied.group(1).replace(",", "")) == ops["totals"]["applied"] > 0
    segments = dict(re.findall(r'<tr><td>([^<]+)</td><td class="n">([\d,]+)</td></tr>', dom))
    assert "Champions" in segments or "Loyal" in segments
    assert sum(ops["segments"].values()) > 0
    groups_table = re.search(r'<table id="t-groups">(.*?)</table>', dom, re.S)
    assert groups_table, dom[-2000:]
    rows = re.findall(r'<tr><td>([^<]+)</td><td class="n">([\d,]+)</td></tr>', groups_table[1])
    shown = {name.replace("&amp;", "&"): int(n.replace(",", "")) for name, n in rows}
    assert len(shown) == 5 and sum(shown.values()) == sum(ops["value_groups"].values()) > 0
    assert shown["high value & stable"] == ops["value_groups"]["high_value_stable"]
    assert ops["clusters"]["version"] is not None, ops["clusters"]
    centres = re.findall(r'<tr><td>(\d+)</td><td class="n">([\d,]+)</td>', dom)
    assert len(centres) == len(ops["clusters"]["centres"]) > 1
    assert ops["dead_letters"] and ops["auc"], ops
    assert any(a["auc"] is not None for a in ops["auc"]), ops["auc"]
    assert re.search(r'id="auc">[01]\.\d{3}<', dom)  # always three decimals
    assert (await asyncio.to_thread(shot.stat)).st_size > 10_000
