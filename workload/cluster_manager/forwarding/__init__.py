"""Forwarding heartbeats to Prometheus by remote write (COS), off the heartbeat's path.

The connector app gets a :class:`Forwarder` under :data:`FORWARDER` from
:func:`forwarding_context`; the status handler calls ``submit(cluster, heartbeat)`` after storing
a heartbeat. With no ``remote_write_urls`` the forwarder does nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from cluster_manager.forwarding.sender import LIMITS, Forwarder, ForwardingLimits, client_tls
from cluster_manager.settings import Settings

FORWARDER = web.AppKey("forwarder", Forwarder)

__all__ = ["FORWARDER", "LIMITS", "Forwarder", "ForwardingLimits", "forwarding_context"]


def forwarding_context(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """Return a cleanup_ctx that runs the forwarder for the app's lifetime."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        forwarder = Forwarder(
            settings.remote_write_urls,
            tls=client_tls(settings.trusted_ca_file) if settings.remote_write_urls else None,
        )
        app[FORWARDER] = forwarder
        await forwarder.start()
        yield
        await forwarder.stop()

    return run
