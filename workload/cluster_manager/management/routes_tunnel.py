"""``/1.0/remote-cluster/{name}/lxd/{path}``: a cluster's LXD API through its tunnel, raw.

For scripting: GET, POST, PUT, PATCH and DELETE go through when the allow-list lets them
(:mod:`cluster_manager.passthrough`: the built-in reads and state changes, plus the setting
``lxd_passthrough_allow_extra``); anything else is refused with 403 before reaching the
cluster. Admin only; changes are recorded in the audit log. The request may arrive on any
unit. The answer is LXD's own JSON envelope with the cluster's status; a cluster whose LXD
failed answers 500 without a body, shown as a JSON error.
"""

from __future__ import annotations

import json
import posixpath
from urllib.parse import quote

from aiohttp import web

from cluster_manager import remote_lxd
from cluster_manager.envelope import error_response
from cluster_manager.errors import BadRequest, Forbidden
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.operations import (
    READ_ERRORS,
    WRITE_ERRORS,
    NoEnvelope,
    documented,
)
from cluster_manager.management.routes_audit import actor_of
from cluster_manager.management.routes_instances import remote_of
from cluster_manager.passthrough import allowed, rules_for

routes = web.RouteTableDef()
PATH = "/1.0/remote-cluster/{name}/lxd/{path:.*}"
ERRORS = (400, 404, 429, 500, 502, 503, 504)
REASONS = {
    403: "not an administrator, missing CSRF header, or the allow-list does not let the call by",
    503: "database or audit log unavailable, or the cluster's tunnel is not connected",
}
DESCRIPTION = "LXD's JSON response envelope, as the cluster answered it"


async def _pass(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    raw = request.match_info["path"]
    path = "/1.0/" + quote(raw, safe="/")  # as a URL path, re-encoded
    path = path.rstrip("/")
    if posixpath.normpath(path) != path:
        raise BadRequest("path: no '.', '..' or empty segments")
    rules = rules_for(request.app[SETTINGS].lxd_passthrough_allow_extra)
    if not allowed(rules, request.method, path):
        raise Forbidden(
            f"{request.method} {path[:200]} is not in the pass-through allow-list"
            " (setting lxd_passthrough_allow_extra widens it)"
        )
    if request.query_string:
        path += "?" + request.query_string
    body = await request.read() if request.method != "GET" else None
    if body:
        try:
            json.loads(body)
        except ValueError:
            raise BadRequest("body: expected JSON") from None
    status, envelope = await remote_lxd.call(
        remote_of(request), actor_of(request), name, request.method, path, body or None
    )
    if envelope is None:
        return error_response(
            502 if status < 400 else status,
            f"cluster {name} answered {status} without an LXD response",
        )
    return web.Response(
        body=json.dumps(envelope).encode(), status=status, content_type="application/json"
    )


@routes.get(PATH)
@documented(
    response=NoEnvelope,
    errors=(*ERRORS, *READ_ERRORS),
    reasons=REASONS,
    role="admin",
    response_description=DESCRIPTION,
)
async def lxd_get(request: web.Request) -> web.Response:
    """Read the cluster's LXD API (GET /1.0/{path}) through its reverse tunnel.

    Works from any unit. 503 when the cluster has no tunnel (enable it on the cluster with
    `microcloud cluster-manager set reverse_tunnel true`), 504 when it does not answer in time,
    502 when the tunnel breaks; LXD's own errors keep their status.
    """
    return await _pass(request)


def _changing(method: str):
    async def handler(request: web.Request) -> web.Response:
        return await _pass(request)

    handler.__doc__ = (
        f"{method} /1.0/{{path}} on the cluster's LXD through its tunnel, if allow-listed.\n\n"
        "Recorded in the audit log. LXD's own errors keep their status; an async answer"
        " names the operation to read under lxd/1.0/operations/."
    )
    handler.__name__ = f"lxd_{method.lower()}"
    return documented(
        response=NoEnvelope,
        raw_body=True,
        errors=(*ERRORS, *WRITE_ERRORS),
        reasons=REASONS,
        role="admin",
        response_description=DESCRIPTION,
    )(handler)


lxd_post = routes.post(PATH)(_changing("POST"))
lxd_put = routes.put(PATH)(_changing("PUT"))
lxd_patch = routes.patch(PATH)(_changing("PATCH"))
lxd_delete = routes.delete(PATH)(_changing("DELETE"))
