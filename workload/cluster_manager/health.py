"""Liveness and readiness, for probes (served on the ops port and the management API)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from cluster_manager.db import POOL
from cluster_manager.envelope import error_response, sync_response
from cluster_manager.management.operations import documented

routes = web.RouteTableDef()


class Live(msgspec.Struct):
    """The process answers."""

    live: bool


class Ready(msgspec.Struct):
    """The database answers."""

    ready: bool


@routes.get("/health/live")
@documented(response=Live, signed_in=False, summary="Liveness probe (no sign-in)")
async def live(_request: web.Request) -> web.Response:
    """The process runs and its event loop answers."""
    return sync_response(Live(live=True))


@routes.get("/health/ready")
@documented(
    response=Ready,
    errors=(503,),
    signed_in=False,
    summary="Readiness probe: the database answers (no sign-in)",
)
async def ready(request: web.Request) -> web.Response:
    """The database answers: this unit can serve requests."""
    try:
        async with request.app[POOL].acquire(timeout=2) as connection:
            await connection.fetchval("SELECT 1", timeout=2)
    except Exception:
        return error_response(503, "database unavailable")
    return sync_response(Ready(ready=True))
