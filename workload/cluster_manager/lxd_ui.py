"""A cluster's own LXD UI, opened through the manager at ``/lxd-ui/<cluster>/ui/``.

The LXD UI is a single-page application that LXD serves at ``/ui/`` and that calls LXD's API
on its own origin with absolute paths (``/1.0/...``). Opened from the manager, both must reach
the cluster's LXD through its reverse tunnel without clashing with the manager's own ``/1.0``
API and ``/ui/`` files. This module decides how:

- **Files.** From ``lxd_ui_directory`` when set (a copy of the LXD UI, e.g. the LXD snap's),
  else from the cluster's LXD at ``/ui/...`` through the tunnel. The MicroCloud daemon at
  canonical/microcloud f26e73c0 forwards only ``/1.0`` paths
  (``cmd/microcloudd/cluster_manager_tunnel.go`` line 226), so with it the directory is
  needed; a 400 from the tunnel says so.
- **Paths.** The files' absolute ``/ui/`` references (HTML attributes, script imports, CSS
  ``url()``) are rewritten under ``/lxd-ui/<cluster>/ui/``, and every page gets, first, the
  manager's small script (:data:`SHIM_PATH`) that sends ``fetch``, ``XMLHttpRequest``,
  ``EventSource`` and ``WebSocket`` URLs of ``/1.0...`` to ``/lxd-ui/<cluster>/1.0...``. The
  API's paths are rewritten where they are used, never in the code's text, so the UI's own
  comparisons with the URLs LXD returns (operations, resources) keep working.
- **Calls.** ``/lxd-ui/<cluster>/1.0/...`` goes to the cluster's LXD as ``/1.0/...`` through
  the tunnel, recorded in the audit log (changes always, reads when ``audit_read_calls``).
  The tunnel carries request/answer frames only, so WebSockets (console, exec, events) are
  refused with a message saying so.

Access (admin only, the session cookie the only credential, same-origin writes) is enforced
by the sign-in middleware (:mod:`cluster_manager.management.auth`).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

from cluster_manager import audit
from cluster_manager.audit import Actor
from cluster_manager.errors import ApiError, BadRequest, NotFound
from cluster_manager.remote_lxd import Remote
from cluster_manager.tunnel import ENABLE_COMMAND, TunnelNotConnected, store

PREFIX = "/lxd-ui/"
SHIM_PATH = "_manager/lxd-ui-shim.js"  # under /lxd-ui/<cluster>/
MAX_FILE_BYTES = 16 * 1024 * 1024
TEXT_SUFFIXES = (".html", ".js", ".mjs", ".css")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".map": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
# A UI path: plain segments only (no '..', no empty segment, nothing to escape a directory).
_UI_PATH = re.compile(r"^(?:[A-Za-z0-9_@+~=,.-]+/)*[A-Za-z0-9_@+~=,.-]*$")
# "/ui/..." or "/ui" right after a quote, a backtick or "url(" (attributes, imports, CSS).
_UI_REFERENCE = re.compile(r"""(?<=["'`(])/ui(?=[/"'`?)])""")
_HEAD = re.compile(rb"<head[^>]*>", re.IGNORECASE)
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "form-action 'self'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class UiFile:
    """One file of the LXD UI as it is sent."""

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type


class UiFilesRefused(ApiError):
    """502: the cluster's tunnel does not forward the UI's files (daemon f26e73c0)."""

    status = 502


def base(cluster: str) -> str:
    """Where the cluster's LXD UI lives on the manager: ``/lxd-ui/<cluster>``."""
    return PREFIX + quote(cluster, safe="")


def content_type(path: str) -> str:
    """The type of a UI file by its name (an extensionless page is the index, HTML)."""
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    suffix = name[dot:].lower() if dot >= 0 else ".html"
    return CONTENT_TYPES.get(suffix, "application/octet-stream")


def check_ui_path(path: str) -> str:
    """The UI file path asked for (after ``/ui/``), or 400."""
    if len(path) > 1024 or not _UI_PATH.fullmatch(path) or ".." in path.split("/"):
        raise BadRequest("path: not a plain LXD UI file path")
    return path


def rewrite(body: bytes, cluster: str, is_html: bool) -> bytes:
    """Send the UI's own ``/ui/`` references under ``/lxd-ui/<cluster>/ui/``; add the shim."""
    text = body.decode("utf-8", errors="surrogateescape")
    text = _UI_REFERENCE.sub(base(cluster) + "/ui", text)
    out = text.encode("utf-8", errors="surrogateescape")
    if is_html:
        tag = f'<script src="{html.escape(base(cluster))}/{SHIM_PATH}"></script>'.encode()
        head = _HEAD.search(out)
        out = out[: head.end()] + tag + out[head.end() :] if head else tag + out
    return out


def _from_directory(directory: str, path: str) -> UiFile:
    root = Path(directory).resolve()
    wanted = (root / path).resolve() if path else root / "index.html"
    if root not in wanted.parents and wanted != root / "index.html":
        raise BadRequest("path: outside the LXD UI's files")
    if not wanted.is_file():  # an unknown page: the app's router shows it (as LXD does)
        if "." in path.rsplit("/", 1)[-1]:
            raise NotFound(f"no such LXD UI file: {path[:200]}")
        wanted = root / "index.html"
    try:
        if wanted.stat().st_size > MAX_FILE_BYTES:
            raise BadRequest(f"{path[:200]} is larger than {MAX_FILE_BYTES} bytes")
        body = wanted.read_bytes()
    except OSError:
        raise NotFound(f"the LXD UI's files are missing in {directory}") from None
    return UiFile(body, content_type(wanted.name))


async def _from_cluster(remote: Remote, actor: Actor, cluster: str, path: str) -> UiFile:
    status, body = await _call(remote, actor, cluster, "GET", "/ui/" + path, None, ui_files=True)
    if status == 400 and not body:
        raise UiFilesRefused(
            f"cluster {cluster}'s MicroCloud forwards only /1.0 API paths through its tunnel,"
            " not the LXD UI's files: set lxd_ui_directory on the manager to a copy of the LXD"
            " UI (e.g. /snap/lxd/current/share/lxd-ui)"
        )
    if status == 404:
        raise NotFound(f"no such LXD UI file: {path[:200]}")
    if status != 200:
        raise UiFilesRefused(f"cluster {cluster} answered {status} for the LXD UI's files")
    return UiFile(body, content_type(path or "index.html"))


async def ui_file(remote: Remote, actor: Actor, cluster: str, path: str) -> UiFile:
    """One LXD UI file for ``cluster``, rewritten to live under ``/lxd-ui/<cluster>/ui/``."""
    path = check_ui_path(path)
    directory = remote.settings.lxd_ui_directory
    if directory:
        row = await store.route(remote.pool, cluster, remote.settings.tunnel_liveness_interval)
        if row is None:
            raise NotFound(f"cluster {cluster[:64]!r} not found")
        if row["unit_address"] is None:  # the page would load, and every call then fail
            raise TunnelNotConnected(cluster)
        found = _from_directory(directory, path)
    else:
        found = await _from_cluster(remote, actor, cluster, path)
    kind = found.content_type.split(";")[0]
    if kind in ("text/html", "text/javascript", "text/css"):
        found.body = rewrite(found.body, cluster, kind == "text/html")
    return found


async def api_call(
    remote: Remote, actor: Actor, cluster: str, method: str, path: str, body: bytes | None
) -> tuple[int, bytes]:
    """One call of the LXD UI to the cluster's LXD (``path`` from ``/1.0``), recorded."""
    return await _call(remote, actor, cluster, method, path, body, ui_files=False)


async def _call(
    remote: Remote,
    actor: Actor,
    cluster: str,
    method: str,
    path: str,
    body: bytes | None,
    *,
    ui_files: bool,
) -> tuple[int, bytes]:
    method = method.upper()
    tunnels = remote.tunnels
    # The user's own token, never a header the browser sent (the LXD UI's fetches carry none).
    headers = actor.lxd_headers()
    if method == "GET" and not remote.settings.audit_read_calls:
        return await tunnels.request_raw(
            cluster, method, path, body, ui_files=ui_files, headers=headers
        )
    async with audit.recorded(
        remote.pool, actor, "cluster", cluster, method, path, body
    ) as outcome:
        status, raw = await tunnels.request_raw(
            cluster, method, path, body, ui_files=ui_files, headers=headers
        )
        outcome.status = status
        outcome.result = "ok" if status < 400 else f"LXD answered {status}"
        return status, raw


def error_page(status: int, title: str, message: str, cluster: str) -> bytes:
    """A plain HTML page for a browser that opened the LXD UI and cannot have it."""
    command = ""
    if ENABLE_COMMAND in message:
        command = (
            "<p>On a member of the cluster, run:</p>"
            f"<pre><code>{html.escape(ENABLE_COMMAND)}</code></pre>"
        )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body><main>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p>{command}"
        f"<p>Status {status}. <a href='/clusters/{quote(cluster, safe='')}'>Back to the"
        f" cluster {html.escape(cluster)}</a></p></main></body></html>"
    ).encode()
