"""Liveness and readiness, for probes (served on the ops port and the management API)."""

from __future__ import annotations

from aiohttp import web

from cluster_manager.db import POOL
from cluster_manager.envelope import error_response, sync_response

routes = web.RouteTableDef()


@routes.get("/health/live")
async def live(_request: web.Request) -> web.Response:
    """The process runs and its event loop answers."""
    return sync_response({"live": True})


@routes.get("/health/ready")
async def ready(request: web.Request) -> web.Response:
    """The database answers: this unit can serve requests."""
    try:
        async with request.app[POOL].acquire(timeout=2) as connection:
            await connection.fetchval("SELECT 1", timeout=2)
    except Exception:
        return error_response(503, "database unavailable")
    return sync_response({"ready": True})
