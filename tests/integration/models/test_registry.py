"""The model registry and `crm-score fit` against the real Redis, under an isolated key prefix."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import astuple

import orjson
import pytest
import redis.asyncio as aioredis

from crm_core.errors import FitRejected
from crm_core.settings import Settings
from scorers.probability import fit_from_profiles
from streams.models.registry import (
    PROBABILITY_MODEL,
    ModelRegistry,
    current_probability_model,
    fit_and_publish,
    scan_profiles,
)
from tests.integration.harness import write_profiles
from tests.populations import AS_OF, simulate

pytestmark = pytest.mark.integration


async def test_publish_current_get_and_retention(prefix: str, redis_client: aioredis.Redis) -> None:
    registry = ModelRegistry(redis_client, prefix, keep=3)
    assert await registry.current("churn") is None
    assert await registry.current_version("churn") is None

    published = [await registry.publish("churn", b"m%d" % i, {"i": i}) for i in range(7)]
    assert published == sorted(published) and len(set(published)) == 7
    assert await registry.current_version("churn") == published[-1]
    current = await registry.current("churn")
    assert current is not None
    assert (current.version, current.payload, current.metadata) == (published[-1], b"m6", {"i": 6})
    assert await registry.versions("churn") == published[-3:]
    old = await registry.get("churn", published[-3])
    assert old is not None and old.payload == b"m4"
    assert await registry.get("churn", published[0]) is None  # beyond keep: deleted
    # Every key of the model carries its hash tag (one Redis Cluster slot).
    keys = [k.decode() async for k in redis_client.scan_iter(match=f"{prefix}:*", count=10_000)]
    assert len(keys) == 3 + 3 and all(k.startswith(f"{prefix}:{{model:churn}}:") for k in keys)
    # Another model is independent.
    assert await registry.current_version("probability") is None


async def test_pointer_never_moves_back(prefix: str, redis_client: aioredis.Redis) -> None:
    registry = ModelRegistry(redis_client, prefix, keep=3)
    slow = await registry.reserve_version("m")  # a publisher that is slow to finish
    fast = await registry.publish("m", b"fast")
    assert await registry.publish("m", b"slow", version=slow) == slow
    assert await registry.current_version("m") == fast > slow
    stored = await registry.get("m", slow)
    assert stored is not None and stored.payload == b"slow"  # kept: within the newest 3

    versions = await asyncio.gather(*(registry.publish("m", b"%d" % i) for i in range(20)))
    assert await registry.current_version("m") == max(versions)
    assert await registry.versions("m") == sorted(versions)[-3:]


async def test_names_must_not_break_the_key_layout(redis_client: aioredis.Redis) -> None:
    registry = ModelRegistry(redis_client, "unused")
    for name in ("a:b", "a}b", "", "x" * 65):
        with pytest.raises(ValueError, match="must match"):
            await registry.publish(name, b"")


async def test_fit_and_publish_reads_every_profile(
    isolated_settings: Settings, prefix: str, redis_client: aioredis.Redis
) -> None:
    profiles = simulate(2500, seed=3)  # more than one SCAN batch
    await write_profiles(redis_client, prefix, profiles)
    await redis_client.set(f"{prefix}:{{c-0}}:seen", b"not a profile")
    scanned = [p async for p in scan_profiles(redis_client, prefix)]
    assert sorted(scanned) == sorted(profiles)

    model = await fit_and_publish(isolated_settings, redis_client, as_of=AS_OF)
    assert model.version == "1"
    oracle = fit_from_profiles(profiles, AS_OF, version="1")  # same data, other order
    assert astuple(model.bgnbd) == pytest.approx(astuple(oracle.bgnbd), rel=1e-6)
    assert model.gamma_gamma is not None and oracle.gamma_gamma is not None
    assert astuple(model.gamma_gamma) == pytest.approx(astuple(oracle.gamma_gamma), rel=1e-4)
    assert model.n_customers == oracle.n_customers == 2500
    registry = ModelRegistry(redis_client, prefix)
    assert await current_probability_model(registry) == model
    stored = await registry.current(PROBABILITY_MODEL)
    assert stored is not None
    assert stored.metadata["n_customers"] == 2500 and stored.metadata["fit_seconds"] > 0


async def _cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crm_score", *args,
        env=settings.subprocess_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_fit_prints_the_published_version(
    isolated_settings: Settings, prefix: str, redis_client: aioredis.Redis
) -> None:
    await write_profiles(redis_client, prefix, simulate(300, seed=8))
    for expected_version in (1, 2):
        code, out, err = await _cli(isolated_settings, "fit", "--as-of", "2026-01-01T00:00:00Z")
        assert code == 0, err
        report = orjson.loads(out)
        assert report["version"] == expected_version
        assert report["customers"] == 300 and report["bgnbd"]["log_likelihood"] < 0
        assert set(report["bgnbd"]) == {
            "r", "alpha", "a", "b", "log_likelihood", "time_unit", "converged"
        }  # fmt: skip
        assert report["bgnbd"]["time_unit"] == "week"
        assert set(report["gamma_gamma"]) == {"p", "q", "gamma"}
        dropout = report["dropout_model"]
        assert dropout["kind"] == "pareto_nbd" and set(dropout["params"]) == {
            "r", "alpha", "s", "beta"
        }  # fmt: skip
        assert report["fitted_at"] == "2026-01-01T00:00:00+00:00" and report["fit_seconds"] > 0
    registry = ModelRegistry(redis_client, prefix)
    assert await registry.current_version(PROBABILITY_MODEL) == 2


async def test_cli_fit_says_when_there_are_too_few_profiles(
    isolated_settings: Settings, prefix: str, redis_client: aioredis.Redis
) -> None:
    await write_profiles(redis_client, prefix, simulate(5, seed=1))
    code, out, err = await _cli(isolated_settings, "fit")
    assert code == 1, out
    assert "too few customers" in err and "need at least 20" in err
    assert await ModelRegistry(redis_client, prefix).current_version(PROBABILITY_MODEL) is None
    code, _, err = await _cli(isolated_settings, "fit", "--as-of", "yesterday")
    assert code == 2 and "ISO 8601" in err


async def test_a_degenerate_fit_is_counted_and_the_last_good_version_stays(
    isolated_settings: Settings, prefix: str, redis_client: aioredis.Redis
) -> None:
    profiles = simulate(300, seed=8)
    good = await fit_and_publish(isolated_settings, redis_client, as_of=AS_OF, profiles=profiles)
    # Same-day repeat orders counted apart (profiles stored before the day count): t_x == 0.
    unmerged = [p._replace(purchase_days=0, last_purchase_at=p.first_purchase_at) for p in profiles]
    for _ in range(2):
        with pytest.raises(FitRejected, match="last good version stays"):
            await fit_and_publish(isolated_settings, redis_client, as_of=AS_OF, profiles=unmerged)
    registry = ModelRegistry(redis_client, prefix)
    assert await registry.current_version(PROBABILITY_MODEL) == int(good.version)
    assert await registry.rejected(PROBABILITY_MODEL) == 2
