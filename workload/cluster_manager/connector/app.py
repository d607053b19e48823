"""create_app for the Cluster Connector."""

from __future__ import annotations

from aiohttp import web

from cluster_manager.connector.handlers import SETTINGS, routes
from cluster_manager.connector.limits import LIMITS, ConnectorLimits
from cluster_manager.connector.middlewares import close_cluster_requests, probe_limit
from cluster_manager.connector.tunnel import routes as tunnel_routes
from cluster_manager.db import pool_context
from cluster_manager.envelope import error_middleware
from cluster_manager.forwarding import forwarding_context
from cluster_manager.heartbeat_writer import writer_context
from cluster_manager.identity import identity_context
from cluster_manager.metrics import pool_tracking, request_metrics
from cluster_manager.notifications import notifications_context
from cluster_manager.settings import Settings
from cluster_manager.tunnel import hub_context


def create_app(settings: Settings) -> web.Application:
    """The connector application (TLS is set up by the server that runs it)."""
    app = web.Application(
        middlewares=[
            request_metrics("connector"),
            close_cluster_requests,
            error_middleware,
            probe_limit,
        ],
        client_max_size=max(settings.max_heartbeat_bytes, settings.max_join_bytes),
        # Bodies are inflated by connector.body, within their limit, not by aiohttp.
        handler_args={"auto_decompress": False},
    )
    app[SETTINGS] = settings
    app[LIMITS] = ConnectorLimits.from_settings(settings)
    app.cleanup_ctx.append(pool_context(settings, "connector"))
    app.cleanup_ctx.append(notifications_context(settings.database_dsn))
    app.cleanup_ctx.append(identity_context())
    app.cleanup_ctx.append(writer_context())
    app.cleanup_ctx.append(pool_tracking("connector"))
    app.cleanup_ctx.append(forwarding_context(settings))
    app.cleanup_ctx.append(hub_context(settings))
    app.add_routes(routes)
    app.add_routes(tunnel_routes)
    return app
