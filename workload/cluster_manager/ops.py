"""create_app for the plain-HTTP ops port: health probes (and metrics)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from cluster_manager import health, metrics
from cluster_manager.db import pool_context
from cluster_manager.envelope import error_middleware
from cluster_manager.settings import Settings


def create_app(
    settings: Settings, worker: int = 0, ops_ports: Sequence[int] | None = None
) -> web.Application:
    """The ops application of worker ``worker``, for Pebble checks and Prometheus.

    ``ops_ports``: every worker's ops port (see :mod:`cluster_manager.workers`).
    """
    app = web.Application(middlewares=[error_middleware])
    app.cleanup_ctx.append(pool_context(settings, "ops"))
    app.add_routes(health.routes)
    app.cleanup_ctx.append(metrics.pool_tracking("ops"))
    app.router.add_get("/metrics", metrics.scrape_handler(settings, worker, ops_ports))
    return app
