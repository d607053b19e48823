"""create_app for the Cluster Connector."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from cluster_manager.connector.handlers import SETTINGS, routes
from cluster_manager.connector.limits import LIMITS, ConnectorLimits
from cluster_manager.db import pool_context
from cluster_manager.envelope import error_middleware
from cluster_manager.forwarding import forwarding_context
from cluster_manager.identity import identity_context
from cluster_manager.metrics import pool_tracking, request_metrics
from cluster_manager.mtls import peer_certificate
from cluster_manager.settings import Settings

CLUSTER_API = "/1.0/remote-cluster"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Join, status and leave: every answer closes the connection (PROTOCOL.md).
CLUSTER_ENDPOINTS = frozenset(
    {
        ("POST", "/1.0/remote-cluster"),
        ("POST", "/1.0/remote-cluster/status"),
        ("DELETE", "/1.0/remote-cluster"),
    }
)


@web.middleware
async def close_cluster_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Close the connection after every answer to join, status and leave, errors included."""
    response = await handler(request)
    if (request.method, request.path) in CLUSTER_ENDPOINTS:
        response.force_close()
    return response


@web.middleware
async def probe_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests without a client certificate, or outside the cluster API, spend the probe bucket.

    Identified clusters spend other buckets (see connector.limits), never this one.
    """
    if peer_certificate(request) is None or not request.path.startswith(CLUSTER_API):
        request.app[LIMITS].probe.check("all", "anonymous requests", "anonymous requests")
    return await handler(request)


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
    app.cleanup_ctx.append(pool_context(settings))
    app.cleanup_ctx.append(identity_context(settings.database_dsn))
    app.cleanup_ctx.append(pool_tracking("connector"))
    app.cleanup_ctx.append(forwarding_context(settings))
    app.add_routes(routes)
    return app
