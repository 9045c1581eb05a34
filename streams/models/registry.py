"""Versioned model parameters in Redis, and fitting the probability model on stored profiles.

A learner publishes; scoring workers poll :meth:`ModelRegistry.current_version` (one ``GET``)
and load the new payload only when it changed, so they hot-swap without a restart
(docs/ARCHITECTURE.md, decision 5). All keys of one model share the hash tag
``{model:<name>}``, so the registry works unchanged on Redis Cluster::

    <prefix>:{model:<name>}:seq        INCR counter that hands out version numbers
    <prefix>:{model:<name>}:current    the published version workers should use
    <prefix>:{model:<name>}:versions   sorted set of the versions still stored
    <prefix>:{model:<name>}:v<n>       hash: payload (bytes), meta (JSON), published_at
    <prefix>:{model:<name>}:rejected   how many fits were rejected as degenerate (not published)
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crm_core.errors import FitRejected, ModelError, StateStoreError
from crm_core.settings import Settings
from schemas import minor_unit_exponent
from scorers.probability import ProbabilityModel, fit_from_profiles
from scorers.probability_batch import high_value_cut
from scorers.profile import Profile
from streams.state.keys import Layout
from streams.state.records import ProfileRecords, pairs

__all__ = [
    "CHURN_MODEL",
    "CLUSTERS_MODEL",
    "DEFAULT_KEEP",
    "PROBABILITY_MODEL",
    "ModelRegistry",
    "ModelVersion",
    "current_probability_model",
    "fit_and_publish",
    "scan_profiles",
]

#: The registry name the BG/NBD + Gamma-Gamma model is published under.
PROBABILITY_MODEL = "probability"
#: The registry name the online churn model's versions are published under (by the learner).
CHURN_MODEL = "churn"
#: The registry name of the customer segmentation's centres (published beside each churn model).
CLUSTERS_MODEL = "clusters"
#: How many versions of a model the registry keeps by default (older ones are deleted).
DEFAULT_KEEP = 5
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
log = logging.getLogger(__name__)

# Both scripts declare every key they touch, and all keys share one hash tag: Cluster-safe.
# Publish. KEYS: current, versions, v<n>. ARGV: n, payload, meta, published_at, keep.
# Returns the versions beyond the newest `keep`, for the client to prune.
_PUBLISH = """
local n = tonumber(ARGV[1])
redis.call('HSET', KEYS[3], 'payload', ARGV[2], 'meta', ARGV[3], 'published_at', ARGV[4])
redis.call('ZADD', KEYS[2], n, n)
if n > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], n)
end
return redis.call('ZREVRANGE', KEYS[2], tonumber(ARGV[5]), -1)
"""
# Prune. KEYS: versions, then v<n> keys. ARGV: keep, then the n of each key. Deletes each
# version that is still beyond the newest `keep` now; returns those beyond it after that.
_PRUNE = """
local keep = tonumber(ARGV[1])
for i = 2, #KEYS do
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[i])
  if rank and rank >= keep then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return redis.call('ZREVRANGE', KEYS[1], keep, -1)
"""


class ModelVersion(NamedTuple):
    """One stored version of a model: its number, payload bytes and metadata."""

    version: int
    payload: bytes
    metadata: dict[str, Any]


class ModelRegistry:
    """Numbered versions of named models in Redis, with a ``current`` pointer.

    Version numbers come from ``INCR``: they increase but may have gaps (a number reserved by a
    publisher that died is never used). The payload, the version index and the pointer are
    written in one server-side script, so a reader never sees a pointer without its payload;
    the pointer never moves back, even when publishers race. The newest ``keep`` versions stay.
    """

    def __init__(self, client: aioredis.Redis, key_prefix: str, *, keep: int = DEFAULT_KEEP):
        if keep < 1:
            raise ValueError(f"keep={keep} must be >= 1 (the current version is always kept)")
        self._client = client
        self._prefix = key_prefix
        self._keep = keep
        self._publish = client.register_script(_PUBLISH)
        self._prune = client.register_script(_PRUNE)

    def key(self, name: str, suffix: str) -> str:
        """The key ``suffix`` (``seq``, ``current``, ``versions``, ``v<n>``) of model ``name``."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"model name {name!r} must match {_NAME.pattern}")
        return Layout(self._prefix).model(name, suffix)

    async def reserve_version(self, name: str) -> int:
        """A new version number, for a payload that must carry its own version."""
        return int(await self._client.incr(self.key(name, "seq")))

    async def publish(
        self,
        name: str,
        payload: bytes,
        metadata: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
    ) -> int:
        """Store a new version, make it current (unless newer ones are); returns its number.

        ``version`` is one from :meth:`reserve_version` (default: reserve one now). Versions
        beyond the newest ``keep`` are then deleted, each in an atomic check-and-delete.
        """
        n = await self.reserve_version(name) if version is None else version
        if n < 1:
            raise ValueError(f"version={n} must come from reserve_version()")
        keys = [self.key(name, s) for s in ("current", "versions", f"v{n}")]
        meta = orjson.dumps(dict(metadata or {}))
        published_at = datetime.now(UTC).isoformat()
        beyond = await self._publish(keys=keys, args=[n, payload, meta, published_at, self._keep])
        while beyond:  # loops again only while concurrent publishes add more to prune
            old = [_int(v) for v in beyond]
            keys = [self.key(name, "versions"), *(self.key(name, f"v{v}") for v in old)]
            beyond = await self._prune(keys=keys, args=[self._keep, *old])
        return n

    async def count_rejected(self, name: str) -> int:
        """Count one rejected fit of ``name`` (key ``rejected``); returns the count so far."""
        return int(await self._client.incr(self.key(name, "rejected")))

    async def rejected(self, name: str) -> int:
        """How many fits of ``name`` were rejected (degenerate) rather than published."""
        raw = await self._client.get(self.key(name, "rejected"))
        return 0 if raw is None else _int(raw)

    async def current_version(self, name: str) -> int | None:
        """The version workers should use (one ``GET``: cheap enough to poll), or ``None``."""
        raw = await self._client.get(self.key(name, "current"))
        return None if raw is None else _int(raw)

    async def get(self, name: str, version: int) -> ModelVersion | None:
        """One stored version, or ``None`` if it was never published or was deleted."""
        raw = await self._client.hmget(self.key(name, f"v{version}"), ["payload", "meta"])
        payload, meta = raw
        if payload is None:
            return None
        data = payload.encode() if isinstance(payload, str) else payload
        return ModelVersion(version, data, orjson.loads(meta) if meta else {})

    async def current(self, name: str) -> ModelVersion | None:
        """The current version with its payload, or ``None`` before the first publish."""
        for _ in range(10):  # the version read can be deleted by `keep` newer publishes
            version = await self.current_version(name)
            if version is None:
                return None
            found = await self.get(name, version)
            if found is not None:
                return found
        raise ModelError(f"model {name!r} changed faster than it could be read; try again")

    async def versions(self, name: str) -> list[int]:
        """The stored versions, oldest first."""
        return [_int(v) for v in await self._client.zrange(self.key(name, "versions"), 0, -1)]


def _int(value: object) -> int:
    if isinstance(value, bytes | str | int):
        return int(value)
    raise ModelError(f"unexpected value {value!r} in the model registry")


async def scan_profiles(
    client: aioredis.Redis, key_prefix: str, *, batch: int = 1000
) -> AsyncIterator[Profile]:
    """Every stored profile under ``key_prefix`` (SCAN, then pipelined HGETALL per batch).

    A profile written during the scan may or may not be included (SCAN's guarantee).
    """
    pattern = Layout(key_prefix).profile_pattern()
    keys: list[bytes] = []
    async for key in client.scan_iter(match=pattern, count=batch):
        keys.append(key)
        if len(keys) >= batch:
            for profile in await _read_profiles(client, keys):
                yield profile
            keys = []
    for profile in await _read_profiles(client, keys):
        yield profile


async def _read_profiles(client: aioredis.Redis, keys: list[bytes]) -> list[Profile]:
    if not keys:
        return []
    records = ProfileRecords(client)
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            await records.queue_read(pipe, key)
        raws = [pairs(reply) for reply in await pipe.execute()]
    return [Profile.from_redis(raw) for raw in raws if raw]


async def fit_and_publish(
    settings: Settings,
    client: aioredis.Redis,
    *,
    as_of: datetime | None = None,
    keep: int = DEFAULT_KEEP,
    profiles: Sequence[Profile] | None = None,
) -> ProbabilityModel:
    """Fit the probability model on every stored profile as of ``as_of`` (default: now) and
    publish it as :data:`PROBABILITY_MODEL`; returns the model with its registry version.

    Raises :class:`ModelError` (nothing is published) when there are too few customers, its
    :class:`FitRejected` for a degenerate fit (logged and counted in the registry's
    ``rejected`` key; the current version stays), and :class:`StateStoreError` when Redis
    fails. ``profiles`` already read are used instead of
    scanning Redis again.
    """
    moment = datetime.now(UTC) if as_of is None else as_of
    try:
        start = time.perf_counter()
        if profiles is None:
            profiles = [p async for p in scan_profiles(client, settings.redis_key_prefix)]
        read_seconds = time.perf_counter() - start
        registry = ModelRegistry(client, settings.redis_key_prefix, keep=keep)
        try:
            model = await asyncio.to_thread(
                fit_from_profiles,
                profiles,
                moment,
                minor_per_major=10 ** minor_unit_exponent(settings.base_currency),
                dropout=settings.dropout_model,
            )
        except FitRejected as exc:
            rejected = await registry.count_rejected(PROBABILITY_MODEL)
            log.warning("%s (%d fits rejected so far)", exc, rejected)
            raise
        cut = await asyncio.to_thread(
            high_value_cut, model, profiles, settings.high_value_top_fraction
        )
        version = str(await registry.reserve_version(PROBABILITY_MODEL))
        model = replace(model, version=version, high_value_clv=cut)
        metadata = {
            "fitted_at": model.fitted_at.isoformat(),
            "n_customers": model.n_customers,
            "profiles_read": len(profiles),
            "log_likelihood": model.log_likelihood,
            "converged": model.converged,
            "dropout_model": model.scoring.to_dict(),
            "high_value_clv": cut,
            "read_seconds": round(read_seconds, 3),
            "fit_seconds": round(time.perf_counter() - start - read_seconds, 3),
        }
        payload = model.to_json()
        await registry.publish(PROBABILITY_MODEL, payload, metadata, version=int(model.version))
    except (RedisError, OSError) as exc:
        raise StateStoreError(
            f"Redis failed while fitting the probability model ({exc!r}); "
            "check it is up (`crm-score services status`) and run the fit again"
        ) from exc
    return model


async def current_probability_model(registry: ModelRegistry) -> ProbabilityModel | None:
    """The current probability model, or ``None`` before the first ``crm-score fit``."""
    found = await registry.current(PROBABILITY_MODEL)
    return None if found is None else ProbabilityModel.from_json(found.payload)
