"""The web UI's files: index.html for the UI's pages, everything else under /ui/<version>/.

The files ship inside the package (cluster_manager/ui) and are read once, when the application
is made. ``<version>`` is a digest of their contents, so assets are cached for a year and a new
release is fetched at once; index.html, which names the version, is revalidated on every load.
A request for another version (a unit of an older or newer release behind the same load
balancer) still gets the file this unit has, uncached.

A browser asking for a page that does not exist (a GET that accepts text/html, outside the API,
the sign-in routes and the UI's files) gets index.html with status 404, so that the UI shows its
own "Page not found"; every other unknown path keeps the JSON 404.

Every answer carries a strict Content-Security-Policy: scripts, styles and data only from this
origin, no inline script or style, no framing.
"""

from __future__ import annotations

import dataclasses
import hashlib
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from cluster_manager.envelope import Handler

UI_PACKAGE = "cluster_manager"
UI_DIRECTORY = "ui"
VERSION_PLACEHOLDER = "__UI_VERSION__"
INDEX = "index.html"
ROUTE_PREFIX = "ui."  # route names: the UI's routes are not part of the JSON API
# Paths the UI's router handles in the browser; each answers with index.html.
PAGES = {
    "/": "overview",
    "/clusters": "clusters",
    "/clusters/{name}": "cluster",
    "/clusters/{name}/instances": "cluster-instances",
    "/instances": "instances",
    "/audit": "audit",
    "/enrol": "enrol",
    "/settings": "settings",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), clipboard-write=(self)",
}
# Unknown paths under these prefixes are never pages: they keep their JSON 404.
NOT_PAGES = ("/1.0", "/oidc", "/ui/", "/openapi", "/health", "/metrics")
CACHE_FOREVER = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"


@dataclasses.dataclass(frozen=True)
class Asset:
    """One file as it is sent."""

    body: bytes
    content_type: str
    etag: str


@dataclasses.dataclass(frozen=True)
class UiFiles:
    """The UI's files, by path relative to the ui directory, and their version."""

    version: str
    index: Asset
    assets: dict[str, Asset]


UI_FILES = web.AppKey("ui_files", UiFiles)


def _walk(directory: Traversable, prefix: str = "") -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in directory.iterdir():
        path = prefix + entry.name
        if entry.is_dir():
            found.update(_walk(entry, path + "/"))
        elif entry.is_file() and _suffix(entry.name) in CONTENT_TYPES:
            found[path] = entry.read_bytes()
    return found


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


def _asset(body: bytes, name: str) -> Asset:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, CONTENT_TYPES[_suffix(name)], etag)


def load_ui_files() -> UiFiles:
    """Read the packaged UI files and name their version by a digest of them all."""
    files = _walk(resources.files(UI_PACKAGE) / UI_DIRECTORY)
    if INDEX not in files:
        raise RuntimeError(f"the UI files are missing: no {INDEX} in {UI_PACKAGE}/{UI_DIRECTORY}")
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path] + b"\0")
    version = digest.hexdigest()[:16]
    index = files.pop(INDEX).replace(VERSION_PLACEHOLDER.encode(), version.encode())
    return UiFiles(
        version=version,
        index=_asset(index, INDEX),
        assets={path: _asset(body, path) for path, body in files.items()},
    )


def _send(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": cache_control, "ETag": asset.etag}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


async def page(request: web.Request) -> web.Response:
    """index.html, for every path the UI's router shows."""
    return _send(request, request.app[UI_FILES].index, CACHE_REVALIDATE)


async def asset(request: web.Request) -> web.Response:
    """A CSS, JavaScript or image file of the UI."""
    files = request.app[UI_FILES]
    found = files.assets.get(request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound(text="no such file")
    fresh = request.match_info["version"] == files.version
    return _send(request, found, CACHE_FOREVER if fresh else CACHE_REVALIDATE)


def _is_unknown_page(request: web.Request) -> bool:
    """A browser's GET of a path no route has, outside the API and the UI's files."""
    return (
        request.method in ("GET", "HEAD")
        and isinstance(request.match_info.http_exception, web.HTTPNotFound)
        and not request.path.startswith(NOT_PAGES)
        and "text/html" in request.headers.get("Accept", "")
    )


@web.middleware
async def unknown_page_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """index.html with status 404 for a page that does not exist: the UI says so itself."""
    if not _is_unknown_page(request):
        return await handler(request)
    index = request.app[UI_FILES].index
    headers = {**SECURITY_HEADERS, "Cache-Control": CACHE_REVALIDATE}
    return web.Response(
        status=404, body=index.body, headers={**headers, "Content-Type": index.content_type}
    )


def setup_ui(app: web.Application) -> None:
    """Serve the UI: its pages at PAGES, its files under /ui/<version>/, its own 404 page."""
    app[UI_FILES] = load_ui_files()
    app.middlewares.append(unknown_page_middleware)
    for path, name in PAGES.items():
        app.router.add_get(path, page, name=f"{ROUTE_PREFIX}{name}")
    app.router.add_get(
        r"/ui/{version:[0-9a-f]{1,64}}/{path:[A-Za-z0-9_./-]{1,200}}",
        asset,
        name=f"{ROUTE_PREFIX}asset",
    )
