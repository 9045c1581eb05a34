"""The query API's HTTP handlers (aiohttp), mounted at ``/api`` on the worker's web server or
served alone by ``crm-score api``.

Every handler that reads customer data authenticates the key first (401 without a valid one),
decides the scope, appends an audit entry, and only then answers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from crm_core.errors import ConfigError, DecryptionError
from crm_core.settings import Settings
from scorers.value_groups import VALUE_GROUPS
from streams.api.answers import ApiError, json_response
from streams.api.audit import AuditLog, Decision
from streams.api.auth import KeyStore
from streams.api.export import export_document
from streams.api.guard import AuthFailures, clip
from streams.api.metrics import ApiMetrics
from streams.api.ops import OpsBoard
from streams.api.policy import DepartmentTree, Principal, Scope
from streams.api.queries import Queries
from streams.api.rights import erase_customer
from streams.api.views import clusters_view, customer_view, rule_view
from streams.models.population import RFM_BOUNDARIES
from streams.models.registry import CHURN_MODEL, CLUSTERS_MODEL, PROBABILITY_MODEL, ModelRegistry
from streams.state.cross_sell_counts import CrossSellRound
from streams.state.keys import SORTS, Layout, Sort
from streams.state.pii import PiiCipher
from streams.state.profiles import get_many

__all__ = ["ApiHandlers"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WorkerHealth = Callable[[], Awaitable[dict[str, Any]]]


class ApiHandlers:
    """The handlers and what they share (Redis client, key store, audit log, queries)."""

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        tree: DepartmentTree,
        segments: list[str],
        ops: OpsBoard,
        metrics: ApiMetrics,
        worker_health: WorkerHealth | None = None,
    ) -> None:
        layout = Layout(settings.redis_key_prefix)
        self.settings = settings
        self.client = client
        self.layout = layout
        self.tree = tree
        self.segments = segments
        self.keys = KeyStore(client, layout, settings.api_key_cache_seconds)
        self.failures = AuthFailures(settings.api_auth_failures_per_minute)
        self.audit = AuditLog(client, layout, settings.api_audit_maxlen)
        self.pii = PiiCipher.from_settings(settings)
        self.queries = Queries(client, layout, segments, pii=self.pii)
        self.ops = ops
        self.metrics = metrics
        self.worker_health = worker_health
        self._registry = ModelRegistry(client, settings.redis_key_prefix)
        self._cross_sell = CrossSellRound.from_settings(settings)

    def routes(self) -> list[web.RouteDef]:
        """The routes, relative to the API's mount point."""
        return [
            web.get("/customers/{customer_id}", self.customer),
            web.post("/customers/{customer_id}/share", self.share),
            web.delete("/customers/{customer_id}", self.erase),
            web.get("/customers/{customer_id}/export", self.export),
            web.get("/segments", self.segment_counts),
            web.get("/segments/{name}/customers", self.segment_members),
            web.get("/value-groups", self.value_group_counts),
            web.get("/clusters", self.clusters),
            web.get("/cross-sell/rules", self.cross_sell_rules),
            web.get("/alerts", self.alerts),
            web.get("/health", self.health),
            web.get("/ops", self.ops_data),
            web.get("/openapi.json", self.openapi),
        ]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Latency and status per route; Redis failures become 503."""
        start = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except RedisError as exc:
            status = 503
            log.warning("%s %s: Redis failed (%r)", clip(request.method, 16), route, exc)
            raise ApiError(503, "Redis is unavailable; try again") from None
        except DecryptionError as exc:  # the detail (key ids) goes to the log, not the caller
            status = 500
            log.error("%s %s: %s", clip(request.method, 16), route, exc)
            message = "stored contact details do not decrypt; the server log says why"
            raise ApiError(500, message) from None
        finally:
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
            self.metrics.requests.labels(route, str(status)).inc()

    async def _audit(
        self,
        principal: Principal | None,
        request: web.Request,
        customer: str | None,
        decision: Decision,
        status: int,
    ) -> None:
        await self.audit.record(principal, request.method, request.path, customer, decision, status)
        self.metrics.audited.labels(decision).inc()

    async def _permitted(
        self, request: web.Request, permission: str, refusal: str
    ) -> tuple[str, Principal]:
        """The path's customer and the caller, if the caller has ``permission``; else the
        refusal is audited and answered (403, ``refusal``)."""
        customer_id = request.match_info["customer_id"]
        principal = await self._principal(request, customer_id)
        if not principal.can(permission):
            await self._audit(principal, request, customer_id, "forbidden", 403)
            raise ApiError(403, refusal)
        return customer_id, principal

    async def _principal(self, request: web.Request, customer: str | None = None) -> Principal:
        address = request.remote or "-"
        wait = self.failures.blocked(address)
        if wait is not None:  # guard.py: not looked up, not audited, counted
            self.metrics.refused.labels("rate_limited").inc()
            raise ApiError(
                429,
                "too many requests without a valid API key from this address; retry later",
                **{"Retry-After": str(math.ceil(wait))},
            )
        header = request.headers.get("Authorization", "")
        presented = header[7:].strip() if header[:7].lower() == "bearer " else None
        principal = await self.keys.authenticate(presented or request.headers.get("X-API-Key"))
        if principal is None:
            self.metrics.refused.labels("unauthenticated").inc()
            if self.failures.failed(address):  # the first of the address's minute is audited
                await self._audit(None, request, customer, "unauthenticated", 401)
            raise ApiError(401, "a valid API key is required", **{"WWW-Authenticate": "Bearer"})
        return principal

    async def customer(self, request: web.Request) -> web.Response:
        """GET /api/customers/{customer_id}."""
        customer_id = request.match_info["customer_id"]
        principal = await self._principal(request, customer_id)
        record = await self.queries.customer(customer_id)
        decision: Decision = "not_found"
        if record is not None:
            decision = "allowed" if Scope(principal, self.tree).allows(record.access) else "denied"
        status = 200 if decision == "allowed" else 404
        await self._audit(principal, request, customer_id, decision, status)
        if record is None or decision != "allowed":
            raise ApiError(404, f"no customer {clip(customer_id, 128)!r}")
        return json_response(customer_view(record, principal))

    async def share(self, request: web.Request) -> web.Response:
        """POST /api/customers/{customer_id}/share {"identity": agent}."""
        customer_id, principal = await self._permitted(
            request, "share", "this key may not share customers (needs the share permission)"
        )
        try:
            body = orjson.loads(await request.read())
            identity = body["identity"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            identity = None
        if not isinstance(identity, str) or not identity.strip():
            await self._audit(principal, request, customer_id, "allowed", 400)
            raise ApiError(400, 'send {"identity": "<agent identity>"}')
        record = await self.queries.customer(customer_id)
        if record is None:
            await self._audit(principal, request, customer_id, "not_found", 404)
            raise ApiError(404, f"no customer {clip(customer_id, 128)!r}")
        await self.queries.share(customer_id, identity)
        await self._audit(principal, request, customer_id, "allowed", 200)
        return json_response({"customer_id": customer_id, "shared_with": identity})

    async def export(self, request: web.Request) -> web.Response:
        """GET /api/customers/{customer_id}/export: everything stored (streams/api/export.py)."""
        customer_id = request.match_info["customer_id"]
        principal = await self._principal(request, customer_id)
        record = await self.queries.customer(customer_id)
        allowed = record is not None and Scope(principal, self.tree).allows(record.access)
        decision: Decision = "allowed" if allowed else "denied" if record else "not_found"
        await self._audit(principal, request, customer_id, decision, 200 if allowed else 404)
        if record is None or not allowed:
            raise ApiError(404, f"no customer {clip(customer_id, 128)!r}")
        document = await export_document(
            self.client, self.layout, record, principal, datetime.now(UTC)
        )
        return json_response(document)

    async def erase(self, request: web.Request) -> web.Response:
        """DELETE /api/customers/{customer_id}: erase the customer (streams/api/rights.py)."""
        customer_id, principal = await self._permitted(
            request, "erase", "this key may not erase customers (admins and privacy keys may)"
        )
        try:
            report = await erase_customer(
                self.settings, self.client, customer_id, datetime.now(UTC), principal, "DELETE"
            )
        except ConfigError as exc:
            raise ApiError(503, str(exc)) from None
        return json_response(report.to_dict())

    async def segment_counts(self, request: web.Request) -> web.Response:
        """GET /api/segments."""
        principal = await self._principal(request)
        counts = await self.queries.segment_counts(Scope(principal, self.tree))
        await self._audit(principal, request, None, "allowed", 200)
        items = [{"name": name, "customers": counts[name]} for name in self.segments]
        return json_response({"segments": items, "total": sum(counts.values())})

    async def segment_members(self, request: web.Request) -> web.Response:
        """GET /api/segments/{name}/customers?sort=clv|churn&cursor=&limit=."""
        principal = await self._principal(request)
        name = request.match_info["name"]
        sort, cursor, limit = self._paging(request)
        if name not in self.segments:
            await self._audit(principal, request, None, "not_found", 404)
            raise ApiError(404, f"no segment {clip(name, 128)!r}; GET /api/segments lists them")
        page = await self.queries.segment_members(
            Scope(principal, self.tree), name, sort, cursor, limit
        )
        await self._audit(principal, request, None, "allowed", 200)
        body = {"segment": name, "sort": sort, "items": page.items, "next_cursor": page.next_cursor}
        return json_response(body)

    def _paging(self, request: web.Request) -> tuple[Sort, int, int]:
        query = request.query
        sort = query.get("sort", "clv")
        try:
            cursor = int(query.get("cursor") or 0)
            limit = int(query.get("limit", 50))
        except ValueError:
            raise ApiError(400, "cursor and limit must be integers") from None
        if sort not in SORTS or cursor < 0 or not 1 <= limit <= 500:
            raise ApiError(400, "sort is clv or churn; cursor >= 0; limit in 1..500")
        return ("clv" if sort == "clv" else "churn"), cursor, limit

    async def value_group_counts(self, request: web.Request) -> web.Response:
        """GET /api/value-groups."""
        principal = await self._principal(request)
        counts = await self.queries.value_group_counts(Scope(principal, self.tree))
        await self._audit(principal, request, None, "allowed", 200)
        items = [
            {"name": name, "label": label, "customers": counts[name]}
            for name, label in VALUE_GROUPS.items()
        ]
        return json_response({"value_groups": items, "total": sum(counts.values())})

    async def clusters(self, request: web.Request) -> web.Response:
        """GET /api/clusters: the published centres and customers per cluster (the whole
        base: population-level, any valid key)."""
        principal = await self._principal(request)
        model = await self._registry.current(CLUSTERS_MODEL)
        centres = 0 if model is None else len(model.metadata.get("centres", []))
        counts = await self.queries.cluster_counts(centres)
        await self._audit(principal, request, None, "allowed", 200)
        return json_response(clusters_view(model, counts))

    async def cross_sell_rules(self, request: web.Request) -> web.Response:
        """GET /api/cross-sell/rules?limit=: the strongest rules as of the newest watermark
        (population-level, any valid key)."""
        principal = await self._principal(request)
        try:
            limit = int(request.query.get("limit", 50))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 500:
            raise ApiError(400, "limit must be in 1..500")
        as_of = await self._newest_watermark()
        rules = await self._cross_sell.top_rules(self.client, as_of, limit)
        await self._audit(principal, request, None, "allowed", 200)
        policy = self._cross_sell.policy
        thresholds = {
            "min_confidence": policy.min_confidence,
            "min_lift": policy.min_lift,
            "min_count": policy.min_count,
        }
        body = {
            "as_of": as_of.isoformat(),
            "thresholds": thresholds,
            "rules": [rule_view(r) for r in rules],
        }
        return json_response(body)

    async def _watermarks(self) -> dict[int, float]:
        """Each partition's saved watermark (epoch seconds); partitions without one left out."""
        partitions = range(self.settings.partitions)
        values = await get_many(self.client, [self.layout.watermark(p) for p in partitions])
        return {p: float(v) for p, v in zip(partitions, values, strict=True) if v is not None}

    async def _newest_watermark(self) -> datetime:
        """The newest partition watermark (event time the counts are as of), or now."""
        marks = (await self._watermarks()).values()
        return datetime.fromtimestamp(max(marks), UTC) if marks else datetime.now(UTC)

    async def alerts(self, request: web.Request) -> web.Response:
        """GET /api/alerts?type=&limit=."""
        principal = await self._principal(request)
        try:
            limit = int(request.query.get("limit", 50))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 500:
            raise ApiError(400, "limit must be in 1..500")
        found = await self.queries.recent_alerts(
            Scope(principal, self.tree), request.query.get("type") or None, limit
        )
        await self._audit(principal, request, None, "allowed", 200)
        return json_response({"alerts": found})

    async def health(self, request: web.Request) -> web.Response:
        """GET /api/health: Kafka, Redis, model versions, watermark lag."""
        try:
            redis_ok = bool(await self.client.ping())
        except (RedisError, OSError):
            redis_ok = False
        models: dict[str, int | None] = {}
        watermarks: dict[str, Any] = {}
        if redis_ok:
            for name in (PROBABILITY_MODEL, CHURN_MODEL, RFM_BOUNDARIES):
                models[name] = await self._registry.current_version(name)
            now = time.time()
            for p, w in (await self._watermarks()).items():
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(w))
                watermarks[str(p)] = {"watermark": when, "lag_seconds": round(now - w, 1)}
        worker = await self.worker_health() if self.worker_health is not None else None
        kafka = bool(worker["assigned_partitions"]) if worker else await self._kafka_reachable()
        ok = redis_ok and kafka
        body = {
            "ok": ok,
            "redis": redis_ok,
            "kafka": kafka,
            "models": models,
            "watermarks": watermarks,
            "worker": worker,
            "pii_encryption": self.pii.status,
        }
        return json_response(body, status=200 if ok else 503)

    async def _kafka_reachable(self) -> bool:
        host, _, port = self.settings.kafka_bootstrap.split(",")[0].rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
        except (OSError, TimeoutError, ValueError):
            return False
        writer.close()
        return True

    async def ops_data(self, request: web.Request) -> web.Response:
        """GET /api/ops: the ops page's series (aggregates only)."""
        return json_response(await self.ops.report())

    async def openapi(self, request: web.Request) -> web.Response:
        """GET /api/openapi.json."""
        from streams.api.openapi import openapi_text

        return web.Response(text=openapi_text(), content_type="application/json")
