"""Response headers every server adds: HSTS over TLS, nosniff, and no caching of JSON.

- ``Strict-Transport-Security`` (TLS servers only): browsers that reached the Management API
  once never try plain HTTP for its host again, for a year. No ``includeSubDomains``: other
  hosts of the operator's domain are not ours to decide for.
- ``X-Content-Type-Options: nosniff`` on every answer: a browser never runs a JSON answer (which
  can echo input) as a script or a page.
- ``Cache-Control: no-store`` on JSON answers: they carry fleet state and, once, a join
  token's secret, which no browser or proxy cache may keep.
"""

from __future__ import annotations

from aiohttp import web

HSTS = "max-age=31536000"


async def _no_store_json(request: web.BaseRequest, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    content_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        headers["Cache-Control"] = "no-store"


async def _hsts(request: web.BaseRequest, response: web.StreamResponse) -> None:
    response.headers["Strict-Transport-Security"] = HSTS


def add_security_headers(app: web.Application, *, tls: bool) -> None:
    """Add the headers to every answer of ``app`` (before it starts)."""
    app.on_response_prepare.append(_no_store_json)
    if tls:
        app.on_response_prepare.append(_hsts)
