"""Put the query API and the ops page on an aiohttp application: the worker's (Faust's web
server is aiohttp; :func:`mount_api` takes its ``app.web.web_app``) or a standalone one
(:func:`run_api`, ``crm-score api``)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from crm_core.errors import ConfigError
from crm_core.settings import Settings
from scorers.segments import load_segments
from streams.api.guard import harden
from streams.api.metrics import ApiMetrics
from streams.api.ops import OpsBoard, Totals
from streams.api.policy import DepartmentTree
from streams.api.routes import ApiHandlers, WorkerHealth
from streams.ingest.records import IngestStats
from streams.state.keys import Layout
from streams.state.profiles import connect_redis

__all__ = [
    "DEFAULT_DEPARTMENTS",
    "HANDLERS",
    "build_api",
    "faust_web_app",
    "mount_api",
    "run_api",
    "worker_totals",
]

#: The department tree used when ``CRM_API_DEPARTMENTS_FILE`` is not set.
DEFAULT_DEPARTMENTS = Path(str(resources.files("streams.api").joinpath("departments.yaml")))
_STATIC = Path(str(resources.files("streams.api").joinpath("static")))
_REDIS_CONNECTIONS = 32
_PAGES = {
    "chart.umd.min.js": "application/javascript",
    "ops.js": "application/javascript",
    "ops.css": "text/css",
}
#: The API sub-application's handlers (for tests and embedding).
HANDLERS = web.AppKey("handlers", ApiHandlers)


def faust_web_app(faust_app: Any) -> web.Application:
    """The aiohttp application under a Faust app's web server (Faust's aiohttp driver)."""
    web_app = getattr(faust_app.web, "web_app", None)
    if not isinstance(web_app, web.Application):
        raise ConfigError("the query API needs Faust's aiohttp web driver (the default)")
    return web_app


def worker_totals(stats: IngestStats) -> Callable[[], Totals]:
    """What the ops board samples of a worker's running totals."""

    def totals() -> Totals:
        return Totals(stats.consumed, stats.applied, dict(stats.alerts), dict(stats.dead_letters))

    return totals


def build_api(
    settings: Settings,
    *,
    totals: Callable[[], Totals] | None = None,
    worker_health: WorkerHealth | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """The API as an aiohttp application to mount at ``/api``; its Redis client and the ops
    sampler start and stop with it."""
    client = connect_redis(settings, max_connections=_REDIS_CONNECTIONS)
    metrics = ApiMetrics(registry)
    segments = list(load_segments().names)
    layout = Layout(settings.redis_key_prefix)
    ops = OpsBoard(client, layout, segments, totals, metrics)
    tree = DepartmentTree.load(settings.api_departments_file or DEFAULT_DEPARTMENTS)
    handlers = ApiHandlers(settings, client, tree, segments, ops, metrics, worker_health)
    api = web.Application(middlewares=[handlers.middleware])
    api.add_routes(handlers.routes())

    async def start(_: web.Application) -> None:
        ops.start()

    async def stop(_: web.Application) -> None:
        await ops.stop()
        await client.aclose()

    api.on_startup.append(start)
    api.on_cleanup.append(stop)
    api[HANDLERS] = handlers
    return api


async def _ops_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_STATIC / "ops.html", headers={"Cache-Control": "no-cache"})


async def _static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in _PAGES:
        raise web.HTTPNotFound()
    return web.FileResponse(_STATIC / name, headers={"Content-Type": _PAGES[name]})


def mount_api(
    root: web.Application,
    settings: Settings,
    *,
    totals: Callable[[], Totals] | None = None,
    worker_health: WorkerHealth | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """Add ``/api/...`` and the ops page (``/ops``) to ``root``, with the request limits and
    security headers of :mod:`streams.api.guard` on all of ``root``; returns the API sub-app."""
    api = build_api(settings, totals=totals, worker_health=worker_health, registry=registry)
    harden(root, api[HANDLERS].metrics)
    root.add_subapp("/api/", api)
    root.router.add_get("/ops", _ops_page)
    root.router.add_get("/ops/{name}", _static)
    return api


def run_api(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the API, the ops page and ``/metrics`` alone until interrupted."""
    root = web.Application()
    mount_api(root, settings, registry=REGISTRY)

    async def metrics(_: web.Request) -> web.Response:
        media_type = CONTENT_TYPE_LATEST.split(";", 1)[0]
        return web.Response(body=generate_latest(REGISTRY), content_type=media_type)

    root.router.add_get("/metrics", metrics)
    web.run_app(
        root,
        host=host or settings.web_host,
        port=port or settings.web_port,
        access_log=None,
        print=None,
    )
