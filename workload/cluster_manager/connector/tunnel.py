"""``GET /1.0/remote-cluster/ws``: a cluster opens its reverse tunnel.

The MicroCloud daemon dials it with gorilla/websocket's default ``Dialer`` (no subprotocol, no
extra headers) over the same pinned mutual TLS as its other requests (canonical/microcloud
``client/cluster_manager_client.go`` lines 89-107 and 159-208). The cluster is identified by its
client certificate, exactly as a heartbeat is.
"""

from __future__ import annotations

import logging

from aiohttp import WSCloseCode, web

from cluster_manager import connection_age
from cluster_manager.connector.handlers import SETTINGS, _identify, _peer_fingerprint
from cluster_manager.connector.limits import LIMITS
from cluster_manager.errors import BadRequest
from cluster_manager.tunnel import TUNNEL_HUB
from cluster_manager.tunnel.live import LiveTunnel

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.get("/1.0/remote-cluster/ws")
async def tunnel(request: web.Request) -> web.StreamResponse:
    """Accept the WebSocket of an enrolled cluster and serve requests through it until it ends."""
    cert_fingerprint = _peer_fingerprint(request)
    request.app[LIMITS].tunnel.check(cert_fingerprint, "tunnels opened by this cluster")
    identity = await _identify(request, cert_fingerprint)
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(
        autoping=False, max_msg_size=settings.tunnel_max_frame_bytes, timeout=5, compress=False
    )
    if not ws.can_prepare(request).ok:
        raise BadRequest("this path only accepts a WebSocket upgrade")
    connection_age.keep(request.transport)
    await ws.prepare(request)
    live = LiveTunnel(
        ws,
        identity.id,
        identity.name,
        cert_fingerprint,
        max_in_flight=settings.tunnel_max_in_flight,
        ping_interval=settings.tunnel_ping_interval,
        pong_timeout=settings.tunnel_pong_timeout,
        transport=request.transport,
    )
    hub = request.app[TUNNEL_HUB]
    if not await hub.attach(live):
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"cluster removed")
        return ws
    try:
        await live.run()
    finally:
        await hub.detach(live)
    return ws
