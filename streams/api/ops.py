"""What the ops page shows: throughput, alert rate by type, segments, value x risk groups,
cluster centres, model AUC, dead letters.

:class:`OpsBoard` samples every ``interval`` seconds: the worker's running totals (when it is
served by a worker; a standalone API has none), customers per segment, value group and cluster
(``ZCARD``s in one round trip), the published cluster centres (read again only when their
version changes) and the churn model versions the learner published. Versions are appended to
``{prefix}:{ops}:auc`` with the version as stream id (so two samplers never add one twice),
because the model registry keeps only the newest few. ``/api/ops`` returns :meth:`OpsBoard.report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from scorers.value_groups import VALUE_GROUPS
from streams.api.metrics import ApiMetrics
from streams.api.queries import text
from streams.models.registry import CHURN_MODEL, CLUSTERS_MODEL, ModelRegistry, ModelVersion
from streams.state.keys import Layout

__all__ = ["OpsBoard", "Totals"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Totals:
    """Running totals of a worker at one moment."""

    consumed: int
    applied: int
    alerts: Mapping[str, int]
    dead_letters: Mapping[str, int]


class OpsBoard:
    """Samples and keeps the ops page's series (the last ``keep`` samples)."""

    def __init__(
        self,
        client: aioredis.Redis,
        layout: Layout,
        segments: Sequence[str],
        totals: Callable[[], Totals] | None = None,
        metrics: ApiMetrics | None = None,
        interval: float = 2.0,
        keep: int = 300,
    ) -> None:
        self._client = client
        self._layout = layout
        self._registry = ModelRegistry(client, layout.prefix)
        self._segments = list(segments)
        self._totals = totals
        self._metrics = metrics
        self.interval = interval
        self._samples: deque[tuple[float, Totals]] = deque(maxlen=keep)
        self._segment_counts: dict[str, int] = {}
        self._group_counts: dict[str, int] = {}
        self._clusters: ModelVersion | None = None
        self._cluster_counts: list[int] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Sample in the background until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except (RedisError, OSError) as exc:
                log.warning("ops sample failed: %r", exc)
            await asyncio.sleep(self.interval)

    async def sample(self) -> None:
        """Take one sample now."""
        if self._totals is not None:
            self._samples.append((time.time(), self._totals()))
        await self._follow_clusters()
        centres = len(self._clusters.metadata.get("centres", [])) if self._clusters else 0
        async with self._client.pipeline(transaction=False) as pipe:
            for name in self._segments:
                pipe.zcard(self._layout.segment(name, "clv"))
            for group in VALUE_GROUPS:
                pipe.zcard(self._layout.value_group(group))
            for k in range(centres):
                pipe.zcard(self._layout.cluster(k))
            counts = [int(n) for n in await pipe.execute()]
        segments, groups = len(self._segments), len(VALUE_GROUPS)
        self._segment_counts = dict(zip(self._segments, counts[:segments], strict=True))
        self._group_counts = dict(zip(VALUE_GROUPS, counts[segments:][:groups], strict=True))
        self._cluster_counts = counts[segments + groups :]
        if self._metrics is not None:
            self._metrics.set_segments(self._segment_counts)
        await self._record_versions()

    async def _follow_clusters(self) -> None:
        """The current cluster centres (their payload is read only when the version moved)."""
        version = await self._registry.current_version(CLUSTERS_MODEL)
        if version is None:
            self._clusters = None
        elif self._clusters is None or self._clusters.version != version:
            self._clusters = await self._registry.current(CLUSTERS_MODEL)

    async def _record_versions(self) -> None:
        key = self._layout.auc_history
        last = await self._client.xrevrange(key, count=1)
        newest = int(text(last[0][0]).split("-")[0]) if last else 0
        for version in await self._registry.versions(CHURN_MODEL):
            if version <= newest:
                continue
            meta, at = await self._client.hmget(
                self._registry.key(CHURN_MODEL, f"v{version}"), ["meta", "published_at"]
            )
            metrics = (orjson.loads(meta) if meta else {}).get("metrics") or {}
            fields = {
                "at": text(at) if at else "",
                "auc": repr(metrics.get("auc")),
                "window_auc": repr(metrics.get("window_auc")),
            }
            with contextlib.suppress(ResponseError):  # another sampler added it first
                await self._client.xadd(key, fields, id=f"{version}-1", maxlen=1000)  # type: ignore[arg-type]

    async def report(self) -> dict[str, Any]:
        """The page's data: series of rates, segment counts, AUC by version, totals."""
        samples = list(self._samples)
        throughput, alert_rates = [], []
        for (t0, a), (t1, b) in itertools.pairwise(samples):
            span = max(t1 - t0, 1e-6)
            throughput.append([t1, round((b.applied - a.applied) / span, 1)])
            per_minute = {
                k: round((v - a.alerts.get(k, 0)) / span * 60, 1) for k, v in b.alerts.items()
            }
            alert_rates.append([t1, per_minute])
        latest = samples[-1][1] if samples else None
        raw = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._client.xrange(self._layout.auc_history),
        )
        auc = []
        for entry_id, fields in raw:
            decoded = {text(k): text(v) for k, v in fields.items()}
            auc.append(
                {
                    "version": int(text(entry_id).split("-")[0]),
                    "published_at": decoded["at"] or None,
                    "auc": _number(decoded["auc"]),
                    "window_auc": _number(decoded["window_auc"]),
                }
            )
        return {
            "generated_at": datetime.now(UTC).isoformat(),
            "pipeline": latest is not None,
            "throughput": throughput,
            "alert_rates": alert_rates,
            "segments": self._segment_counts,
            "value_groups": self._group_counts,
            "clusters": self._clusters_report(),
            "auc": auc,
            "dead_letters": dict(latest.dead_letters) if latest else {},
            "totals": {
                "consumed": latest.consumed if latest else None,
                "applied": latest.applied if latest else None,
                "alerts": dict(latest.alerts) if latest else {},
            },
        }

    def _clusters_report(self) -> dict[str, Any]:
        model = self._clusters
        meta = model.metadata if model is not None else {}
        return {
            "version": model.version if model is not None else None,
            "n_examples": meta.get("n_examples"),
            "centres": meta.get("centres", []),
            "customers": self._cluster_counts,
        }


def _number(value: str) -> float | None:
    return None if value in ("None", "") else float(value)
