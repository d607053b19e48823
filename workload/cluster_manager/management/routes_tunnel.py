"""``GET /1.0/remote-cluster/{name}/lxd/{path}``: read a cluster's LXD API through its tunnel.

Read-only and admin-only (every ``/1.0`` path is, see :mod:`.auth`); the request may arrive on
any unit. The answer is LXD's own JSON envelope with the cluster's status; a cluster whose LXD
failed answers 500 without a body, shown as a JSON error.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from aiohttp import web

from cluster_manager.envelope import error_response
from cluster_manager.tunnel import TUNNELS

routes = web.RouteTableDef()


@routes.get("/1.0/remote-cluster/{name}/lxd/{path:.*}")
async def lxd_get(request: web.Request) -> web.Response:
    """Pass one GET to the cluster's LXD API (``path`` is after ``/1.0/``)."""
    name = request.match_info["name"]
    path = "/1.0/" + quote(request.match_info["path"], safe="/")  # as a URL path, re-encoded
    if request.query_string:
        path += "?" + request.query_string
    status, envelope = await request.app[TUNNELS].request(name, "GET", path.rstrip("/"))
    if envelope is None:
        return error_response(
            502 if status < 400 else status,
            f"cluster {name} answered {status} without an LXD response",
        )
    return web.Response(
        body=json.dumps(envelope).encode(), status=status, content_type="application/json"
    )
