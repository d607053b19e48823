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
from cluster_manager.management.operations import READ_ERRORS, NoEnvelope, documented
from cluster_manager.tunnel import TUNNELS

routes = web.RouteTableDef()


@routes.get("/1.0/remote-cluster/{name}/lxd/{path:.*}")
@documented(
    response=NoEnvelope,
    errors=(400, 404, 429, 500, 502, 503, 504, *READ_ERRORS),
    reasons={503: "database unavailable, or the cluster's tunnel is not connected"},
    response_description="LXD's JSON response envelope, as the cluster answered it",
)
async def lxd_get(request: web.Request) -> web.Response:
    """Read the cluster's LXD API (GET /1.0/{path}) through its reverse tunnel.

    Works from any unit. 503 when the cluster has no tunnel (enable it on the cluster with
    `microcloud cluster-manager set reverse_tunnel true`), 504 when it does not answer in time,
    502 when the tunnel breaks; LXD's own errors keep their status.
    """
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
