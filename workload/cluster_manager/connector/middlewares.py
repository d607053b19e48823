"""The connector's own middlewares: who spends the probe bucket, and which answers close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from cluster_manager.connector.limits import LIMITS
from cluster_manager.mtls import peer_certificate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLUSTER_API = "/1.0/remote-cluster"
# Join, status and leave: every answer closes the connection (PROTOCOL.md, "Answers the daemon
# can live with"); a success is also empty (envelope.empty_ok).
CLUSTER_ENDPOINTS = frozenset(
    {
        ("POST", "/1.0/remote-cluster"),
        ("POST", "/1.0/remote-cluster/status"),
        ("DELETE", "/1.0/remote-cluster"),
    }
)


@web.middleware
async def close_cluster_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Close the connection after every answer to join, status and leave, errors included.

    Put it before the error middleware, so that it sees the error answers too.
    """
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
