"""``/lxd-ui/<cluster>/``: the cluster's own LXD UI through its tunnel (cluster_manager.lxd_ui).

- ``GET /lxd-ui/<cluster>/`` sends the browser on to ``/lxd-ui/<cluster>/ui/``;
- ``GET /lxd-ui/<cluster>/ui/<file>``: the LXD UI's files, rewritten to live there; opening
  the UI (its index page) is recorded in the audit log;
- ``GET /lxd-ui/<cluster>/_manager/lxd-ui-shim.js``: the script routing its API calls;
- ``GET|POST|PUT|PATCH|DELETE /lxd-ui/<cluster>/1.0/...``: the cluster's LXD ``/1.0/...``
  through the tunnel, recorded in the audit log; a WebSocket upgrade is refused (501).

Only administrators, by their session cookie; changes must come from this origin (the sign-in
middleware checks both). A browser opening a page it cannot have gets an HTML page saying why
(with the command that enables the tunnel when it is not connected); the API answers JSON.
These routes are not part of the JSON API, so they are not in the OpenAPI document.
"""

from __future__ import annotations

import posixpath
from importlib import resources
from urllib.parse import unquote

from aiohttp import web

from cluster_manager import audit, lxd_ui
from cluster_manager.envelope import Handler, error_response
from cluster_manager.errors import ApiError, BadRequest
from cluster_manager.management.routes_audit import actor_of
from cluster_manager.management.routes_instances import remote_of
from cluster_manager.management.static_routes import ROUTE_PREFIX as UI_ROUTE_PREFIX

SHIM = (resources.files("cluster_manager.management") / "lxd_ui_shim.js").read_bytes()
API_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Route names: like the manager's own UI pages, not part of the JSON API (nor OpenAPI).
ROUTE_PREFIX = UI_ROUTE_PREFIX + "lxd-ui-"
NAME = "{name:[^/]{1,256}}"


def _to_ui(request: web.Request) -> web.Response:
    location = lxd_ui.base(request.match_info["name"]) + "/ui/"
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


async def start(request: web.Request) -> web.Response:
    """``/lxd-ui/<cluster>`` and ``/lxd-ui/<cluster>/``: on to the UI's index page."""
    return _to_ui(request)


async def shim(request: web.Request) -> web.Response:
    """The script that sends the LXD UI's API calls under ``/lxd-ui/<cluster>/``."""
    return web.Response(
        body=SHIM,
        headers={**lxd_ui.SECURITY_HEADERS, "Content-Type": "text/javascript; charset=utf-8"},
    )


async def ui_file(request: web.Request) -> web.Response:
    """One file of the LXD UI (its index page for the UI's own page paths)."""
    name = request.match_info["name"]
    path = request.match_info.get("path", "")
    remote, actor = remote_of(request), actor_of(request)
    if path in ("", "index.html"):  # the UI is being opened: who opened which cluster's
        async with audit.recorded(
            remote.pool, actor, "manager", name, "GET", request.path[:4096], None
        ) as outcome:
            found = await lxd_ui.ui_file(remote, actor, name, path)
            outcome.status, outcome.result = 200, "LXD UI opened"
    else:
        found = await lxd_ui.ui_file(remote, actor, name, path)
    return web.Response(
        body=found.body, headers={**lxd_ui.SECURITY_HEADERS, "Content-Type": found.content_type}
    )


def _lxd_path(request: web.Request) -> str:
    """``/1.0/...`` (with its query string) from ``/lxd-ui/<cluster>/1.0/...``, as sent."""
    raw = request.raw_path.split("?", 1)[0]
    path = "/" + raw.split("/", 3)[3]
    plain = unquote(path)  # "%2e%2e" is ".." to LXD's router too
    if posixpath.normpath(plain) != plain or "//" in plain:
        raise BadRequest("path: no '.', '..' or empty segments")
    if request.query_string:
        path += "?" + request.query_string
    return path


async def api(request: web.Request) -> web.Response:
    """One call of the LXD UI, to the cluster's LXD through its tunnel."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return error_response(
            501,
            "Consoles, exec and events need a WebSocket, which the MicroCloud reverse tunnel"
            " does not carry: use the cluster's LXD UI directly for them",
        )
    name = request.match_info["name"]
    path = _lxd_path(request)
    remote = remote_of(request)
    body = None
    if request.method != "GET":
        limit = remote.tunnels.max_body_bytes()
        if request.content_length is not None and request.content_length > limit:
            raise BadRequest(f"body larger than {limit} bytes")
        body = await request.read() or None
    status, raw = await lxd_ui.api_call(
        remote, actor_of(request), name, request.method, path, body
    )
    if not raw and status >= 400:
        return error_response(status, f"cluster {name} answered {status} without an LXD response")
    return web.Response(
        status=status,
        body=raw,
        headers={**lxd_ui.SECURITY_HEADERS, "Content-Type": "application/json"},
    )


def _is_page(request: web.Request) -> bool:
    """A request for one of the UI's pages or files, not one of its API calls."""
    parts = request.path.split("/", 3)
    return len(parts) < 4 or not (parts[3] == "1.0" or parts[3].startswith("1.0/"))


@web.middleware
async def page_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A refused or failed LXD UI page is an HTML page saying why (its API keeps JSON)."""
    if not request.path.startswith(lxd_ui.PREFIX) or not _is_page(request):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as error:
        cluster = request.path.split("/", 3)[2] if request.path.count("/") >= 2 else ""
        titles = {401: "Sign in first", 403: "Not allowed", 503: "Tunnel not connected"}
        page = lxd_ui.error_page(
            error.status, titles.get(error.status, "LXD UI unavailable"), error.message, cluster
        )
        if error.status == 401:
            page = page.replace(b"</main>", b"<p><a href='/oidc/login'>Sign in</a></p></main>")
        return web.Response(
            status=error.status,
            body=page,
            headers={
                **lxd_ui.SECURITY_HEADERS,
                **error.headers,
                "Content-Type": "text/html; charset=utf-8",
            },
        )


def setup_lxd_ui(app: web.Application) -> None:
    """Add the routes and the HTML error pages (call before sign-in is set up)."""
    app.middlewares.append(page_errors)
    add = app.router.add_route
    base = "/lxd-ui/" + NAME
    add("GET", base, start, name=ROUTE_PREFIX + "start")
    add("GET", base + "/", start, name=ROUTE_PREFIX + "start-slash")
    add("GET", base + "/" + lxd_ui.SHIM_PATH, shim, name=ROUTE_PREFIX + "shim")
    add("GET", base + "/ui", start, name=ROUTE_PREFIX + "ui-root")
    add("GET", base + "/ui/{path:.*}", ui_file, name=ROUTE_PREFIX + "ui")
    for method in API_METHODS:
        for suffix, label in (("/1.0", "api-root"), ("/1.0/{rest:.*}", "api")):
            add(method, base + suffix, api, name=f"{ROUTE_PREFIX}{label}-{method.lower()}")


__all__ = ["setup_lxd_ui"]
