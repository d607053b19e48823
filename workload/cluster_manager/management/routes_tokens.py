"""/1.0/remote-cluster-join-token: create, list and revoke join tokens."""

from __future__ import annotations

from aiohttp import web

from cluster_manager import tokens, validation
from cluster_manager.db import POOL
from cluster_manager.envelope import sync_response
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.requests import json_body

routes = web.RouteTableDef()

CREATE_FIELDS = ("cluster_name", "description", "expiry")


@routes.post("/1.0/remote-cluster-join-token")
async def create_token(request: web.Request) -> web.Response:
    """Create a token; answers with the token and the command a cluster member runs."""
    payload = await json_body(request, CREATE_FIELDS)
    name = validation.cluster_name(payload.get("cluster_name"))
    description = validation.text(
        payload.get("description"), "description", validation.MAX_DESCRIPTION, default=""
    )
    expiry = payload.get("expiry")
    expires_in = validation.duration(expiry, "expiry") if expiry is not None else None
    token, row = await tokens.create_token(
        request.app[POOL], request.app[SETTINGS], name, description, expires_in
    )
    encoded = token.encode()
    return sync_response({**row, "token": encoded, "command": tokens.join_command(token)})


@routes.get("/1.0/remote-cluster-join-token")
async def list_tokens(request: web.Request) -> web.Response:
    """Pending tokens, oldest first, without secrets."""
    return sync_response(await tokens.list_tokens_with_state(request.app[POOL]))


@routes.delete("/1.0/remote-cluster-join-token/{name}")
async def revoke_token(request: web.Request) -> web.Response:
    """Revoke a pending token."""
    await tokens.revoke_token(request.app[POOL], request.match_info["name"])
    return sync_response(None)
