"""/1.0/configuration: what the UI needs before anything else (readable without signing in)."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from cluster_manager.envelope import sync_response
from cluster_manager.management.auth import csrf_token, current_user
from cluster_manager.management.keys import SETTINGS

routes = web.RouteTableDef()


@routes.get("/1.0/configuration")
async def configuration(request: web.Request) -> web.Response:
    """Connector addresses, Grafana, heartbeat timing, the signed-in user and its CSRF token."""
    settings = request.app[SETTINGS]
    user = current_user(request)
    return sync_response(
        {
            "connector_addresses": list(settings.connector_addresses),
            "grafana_url": settings.grafana_url or None,
            "grafana_dashboard_uid": settings.grafana_dashboard_uid or None,
            "heartbeat_interval": settings.heartbeat_interval,
            "stale_after_seconds": settings.stale_after_seconds,
            "user": dataclasses.asdict(user) if user is not None else None,
            "csrf_token": csrf_token(request),
        }
    )
