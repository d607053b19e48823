"""The reverse tunnel (issue 12): clusters dial in, the manager sends LXD requests through.

- :mod:`.frames`: the daemon's JSON frames; :mod:`.live`: one WebSocket and its waiting
  requests; :mod:`.hub`: this unit's tunnels, one per cluster across units;
  :mod:`.store`: which unit holds which tunnel; :mod:`.channel`: the signed unit-to-unit
  channel; :mod:`.service`: ``await tunnels.request(cluster, method, path, body)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from cluster_manager.db import POOL
from cluster_manager.notifications import NOTIFICATIONS
from cluster_manager.settings import Settings
from cluster_manager.tunnel import metrics
from cluster_manager.tunnel.errors import ENABLE_COMMAND, TunnelNotConnected
from cluster_manager.tunnel.hub import TunnelHub
from cluster_manager.tunnel.service import Tunnels

TUNNEL_HUB = web.AppKey("tunnel_hub", TunnelHub)
TUNNELS = web.AppKey("tunnels", Tunnels)

__all__ = [
    "ENABLE_COMMAND",
    "TUNNELS",
    "TUNNEL_HUB",
    "TunnelHub",
    "TunnelNotConnected",
    "Tunnels",
    "hub_context",
    "tunnels_context",
]


def hub_context(settings: Settings):
    """cleanup_ctx of the connector: its hub (shared with the management app if given).

    After the pool's and the notification listener's contexts.
    """

    async def run(app: web.Application) -> AsyncIterator[None]:
        if TUNNEL_HUB not in app:
            app[TUNNEL_HUB] = TunnelHub(settings)
        hub = app[TUNNEL_HUB]
        await hub.start(app[POOL], app[NOTIFICATIONS])
        metrics.track(hub)

        async def close_tunnels(_app: web.Application) -> None:
            await hub.close_all()  # before aiohttp waits for running handlers to finish

        app.on_shutdown.append(close_tunnels)
        yield
        metrics.untrack(hub)
        await hub.stop()

    return run


def tunnels_context(settings: Settings):
    """cleanup_ctx of the management app: the request service (after the pool)."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        hub = app.get(TUNNEL_HUB)
        app[TUNNELS] = Tunnels(settings, app[POOL], hub)
        yield
        with contextlib.suppress(Exception):
            await app[TUNNELS].close()

    return run
