"""Connections exempt from the connector's age cap: the reverse tunnels.

The connector closes every connection after ``connection_max_age`` (the MicroCloud client opens
a new one per request); a tunnel's WebSocket is meant to live for days, so its handler marks
its transport here once the cluster is identified, and the cap skips it.
"""

from __future__ import annotations

import asyncio
import weakref

LONG_LIVED: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()


def keep(transport: asyncio.BaseTransport | None) -> None:
    """Exempt this connection from the age cap."""
    if transport is not None:
        LONG_LIVED.add(transport)


def exempt(transport: asyncio.BaseTransport | None) -> bool:
    """Whether the age cap must spare this connection."""
    return transport is not None and transport in LONG_LIVED
