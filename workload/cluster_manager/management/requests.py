"""Reading request bodies: JSON objects with a known set of fields, bounded in size."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from cluster_manager import validation
from cluster_manager.errors import BadRequest

MAX_BODY_BYTES = 64 * 1024


async def json_body(request: web.Request, fields: Iterable[str]) -> dict[str, Any]:
    """The body as a JSON object; any field outside ``fields`` is refused by name."""
    allowed = tuple(fields)
    payload = validation.parse_json_object(await request.read())
    for field in payload:
        if field not in allowed:
            raise BadRequest(f"{field[:64]} is not a known field (known: {', '.join(allowed)})")
    return payload
