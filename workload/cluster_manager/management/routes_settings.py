"""/1.0/settings: fleet-wide defaults shared by every unit (thresholds, staleness, tokens)."""

from __future__ import annotations

from aiohttp import web

from cluster_manager import fleet_settings
from cluster_manager.db import POOL
from cluster_manager.envelope import sync_response
from cluster_manager.fleet_settings import FleetSettings, SettingsChanges
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.operations import READ_ERRORS, WRITE_ERRORS, documented
from cluster_manager.management.requests import json_body

routes = web.RouteTableDef()


@routes.get("/1.0/settings")
@documented(response=FleetSettings, errors=READ_ERRORS)
async def get_settings(request: web.Request) -> web.Response:
    """Fleet-wide defaults in effect on every unit, each with where it comes from."""
    return sync_response(
        await fleet_settings.get_settings(request.app[POOL], request.app[SETTINGS])
    )


@routes.patch("/1.0/settings")
@documented(body=SettingsChanges, response=FleetSettings, errors=WRITE_ERRORS)
async def patch_settings(request: web.Request) -> web.Response:
    """Change fleet-wide defaults (all or nothing; null: back to the unit's config)."""
    changes = await json_body(request, SettingsChanges)
    return sync_response(
        await fleet_settings.update_settings(request.app[POOL], request.app[SETTINGS], changes)
    )
