"""CDNOW through the worker's Redis script: the profiles it keeps (transaction days, the first
day's amount) equal the pure fold, and the population fit on them matches the published BG/NBD."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from crm_core.settings import Settings
from crm_score.cdnow_check import CALIBRATION_END, PUBLISHED, cdnow_profiles
from crm_score.datasets import cdnow_events, load_cdnow_sample, write_cdnow_events
from schemas import PurchaseEvent
from scorers.deltas import delta_for, epoch_seconds
from scorers.probability import fit_from_profiles
from streams.state.profiles import ApplyRequest, RedisProfileStore, connect_redis
from tests.integration.harness import run_cli
from tests.paths import CDNOW_SAMPLE

pytestmark = pytest.mark.integration


async def test_redis_profiles_of_cdnow_equal_the_fold_and_fit_the_published_model(
    base_settings: Settings,
) -> None:
    df = load_cdnow_sample(CDNOW_SAMPLE)
    events = [PurchaseEvent.model_validate(raw) for raw in cdnow_events(df)]
    events = [e for e in events if e.event_time <= CALIBRATION_END]
    events.sort(key=lambda e: e.event_time)  # as the event clock releases them
    requests = [
        ApplyRequest(e.customer_id, "purchase", n, e.event_id, epoch_seconds(e.event_time),
                     delta_for(e, {"USD": 1.0}))
        for n, e in enumerate(events)
    ]  # fmt: skip
    client = connect_redis(base_settings)
    prefix = f"cdnow-{uuid.uuid4().hex[:8]}"
    store = RedisProfileStore(client, base_settings, key_prefix=prefix)
    try:
        for start in range(0, len(requests), 500):
            await store.apply_batch(requests[start : start + 500])
        expected = cdnow_profiles(df)
        stored = {}
        for customer in expected:
            found = await store.get_profile(customer)
            assert found is not None
            stored[customer] = found
        assert stored == expected
    finally:
        await client.delete(*[k async for k in client.scan_iter(match=f"{prefix}:*")])
        await store.close()
        await client.aclose()
    model = fit_from_profiles(stored.values(), CALIBRATION_END, dropout="bgnbd")
    for name in ("r", "alpha", "a", "b"):
        assert getattr(model.bgnbd, name) == pytest.approx(PUBLISHED["bgnbd"][name], rel=0.01)
    assert model.log_likelihood == pytest.approx(PUBLISHED["bgnbd"]["log_likelihood"], rel=0.01)


async def test_crm_score_fit_on_cdnow_events_prints_the_published_models(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    events_file = tmp_path / "cdnow.jsonl"
    write_cdnow_events(load_cdnow_sample(CDNOW_SAMPLE), events_file)
    code, out = await run_cli(
        isolated_settings, "fit", "--events", str(events_file), "--as-of", "1997-09-30T00:00:00Z"
    )
    assert code == 0, out
    report = orjson.loads(out[out.index("{") :])
    for name, published in PUBLISHED["bgnbd"].items():
        assert report["bgnbd"][name] == pytest.approx(published, rel=0.01), name
    for name, published in PUBLISHED["gamma_gamma"].items():
        assert report["gamma_gamma"][name] == pytest.approx(published, rel=0.02), name
    dropout = report["dropout_model"]
    assert dropout["kind"] == "pareto_nbd" and dropout["time_unit"] == "week"
    for name in ("r", "alpha", "s", "beta"):
        assert dropout["params"][name] == pytest.approx(PUBLISHED["pareto_nbd"][name], rel=0.01)
    assert report["customers"] == 2357 and report["fitted_at"] == "1997-09-30T00:00:00+00:00"
