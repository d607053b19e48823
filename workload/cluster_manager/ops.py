"""create_app for the plain-HTTP ops port: health probes (and metrics)."""

from __future__ import annotations

from aiohttp import web

from cluster_manager import health, metrics
from cluster_manager.db import pool_context
from cluster_manager.envelope import error_middleware
from cluster_manager.settings import Settings


def create_app(settings: Settings, worker: int = 0) -> web.Application:
    """The ops application of worker ``worker``, for Pebble checks and Prometheus."""
    app = web.Application(middlewares=[error_middleware])
    app.cleanup_ctx.append(pool_context(settings, "ops"))
    app.add_routes(health.routes)
    app.cleanup_ctx.append(metrics.pool_tracking("ops"))
    app.router.add_get("/metrics", metrics.scrape_handler(settings, worker))
    return app
