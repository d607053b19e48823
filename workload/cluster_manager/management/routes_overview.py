"""/1.0/overview: fleet aggregates for the overview page, in one call."""

from __future__ import annotations

from aiohttp import web

from cluster_manager.db import POOL
from cluster_manager.envelope import sync_response
from cluster_manager.management.keys import SETTINGS
from cluster_manager.overview import fleet_overview

routes = web.RouteTableDef()


@routes.get("/1.0/overview")
async def overview(request: web.Request) -> web.Response:
    """Clusters by health, instance/member distributions, CPU, memory, storage, warnings."""
    return sync_response(await fleet_overview(request.app[POOL], request.app[SETTINGS]))
