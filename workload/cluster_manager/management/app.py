"""create_app for the Management API."""

from __future__ import annotations

from aiohttp import web

from cluster_manager import health
from cluster_manager.db import pool_context
from cluster_manager.envelope import error_middleware
from cluster_manager.management import (
    openapi,
    routes_audit,
    routes_clusters,
    routes_configuration,
    routes_instances,
    routes_overview,
    routes_settings,
    routes_tokens,
    routes_tunnel,
)
from cluster_manager.management.auth import setup_auth
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.requests import MAX_BODY_BYTES
from cluster_manager.management.routes_lxd_ui import setup_lxd_ui
from cluster_manager.management.static_routes import setup_ui
from cluster_manager.metrics import pool_tracking, request_metrics
from cluster_manager.settings import Settings
from cluster_manager.tunnel import tunnels_context


def api_app(settings: Settings) -> web.Application:
    """The routes, the pool and the error middleware, without sign-in (see create_app)."""
    app = web.Application(
        middlewares=[request_metrics("management"), error_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(pool_context(settings, "management"))
    app.cleanup_ctx.append(pool_tracking("management"))
    app.cleanup_ctx.append(tunnels_context(settings))
    app.add_routes(health.routes)
    app.add_routes(openapi.routes)
    app.add_routes(routes_configuration.routes)
    app.add_routes(routes_overview.routes)
    app.add_routes(routes_clusters.routes)
    app.add_routes(routes_settings.routes)
    app.add_routes(routes_tokens.routes)
    app.add_routes(routes_tunnel.routes)
    app.add_routes(routes_audit.routes)
    app.add_routes(routes_instances.routes)
    return app


def create_app(settings: Settings) -> web.Application:
    """The management application (TLS is set up by the server that runs it)."""
    app = api_app(settings)
    setup_lxd_ui(app)  # its HTML error pages wrap the sign-in guard
    setup_auth(app, settings)
    routes_audit.setup_audit(app)
    setup_ui(app)
    return app
