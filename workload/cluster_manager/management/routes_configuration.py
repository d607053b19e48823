"""/1.0/configuration: what the UI needs before anything else (readable without signing in)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from cluster_manager import fleet_settings
from cluster_manager.db import POOL
from cluster_manager.envelope import sync_response
from cluster_manager.management.auth import User, csrf_token, current_user
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.operations import documented

routes = web.RouteTableDef()


class Configuration(msgspec.Struct):
    """What the UI needs to start."""

    connector_addresses: list[str]
    grafana_url: str | None
    grafana_dashboard_uid: str | None
    heartbeat_interval: Annotated[int, msgspec.Meta(ge=1)]
    stale_after_seconds: Annotated[
        float, msgspec.Meta(description="the fleet's staleness limit (GET /1.0/settings)")
    ]
    user: User | None
    csrf_token: Annotated[
        str | None,
        msgspec.Meta(
            description="send as X-CSRF-Token on POST, PATCH, DELETE; null when signed out"
        ),
    ]


@routes.get("/1.0/configuration")
@documented(response=Configuration, signed_in=False, errors=(503,))
async def configuration(request: web.Request) -> web.Response:
    """What the UI needs to start; the signed-in user or null (no sign-in)."""
    settings = request.app[SETTINGS]
    stale_after = await fleet_settings.stale_after_seconds(request.app[POOL], settings)
    return sync_response(
        Configuration(
            connector_addresses=list(settings.connector_addresses),
            grafana_url=settings.grafana_url or None,
            grafana_dashboard_uid=settings.grafana_dashboard_uid or None,
            heartbeat_interval=settings.heartbeat_interval,
            stale_after_seconds=stale_after,
            user=current_user(request),
            csrf_token=csrf_token(request),
        )
    )
