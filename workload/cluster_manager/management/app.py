"""create_app for the Management API."""

from __future__ import annotations

from aiohttp import web

from cluster_manager import health
from cluster_manager.db import pool_context
from cluster_manager.envelope import error_middleware
from cluster_manager.settings import Settings


def create_app(settings: Settings) -> web.Application:
    """The management application (TLS is set up by the server that runs it)."""
    app = web.Application(middlewares=[error_middleware])
    app.cleanup_ctx.append(pool_context(settings, max_size=5))
    app.add_routes(health.routes)
    return app
