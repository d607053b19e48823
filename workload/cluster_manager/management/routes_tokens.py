"""/1.0/remote-cluster-join-token: create, list and revoke join tokens."""

from __future__ import annotations

from aiohttp import web

from cluster_manager import tokens, validation
from cluster_manager.db import POOL
from cluster_manager.envelope import sync_response
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.operations import READ_ERRORS, WRITE_ERRORS, documented
from cluster_manager.management.requests import json_body
from cluster_manager.tokens import CreatedToken, Token, TokenRequest

routes = web.RouteTableDef()


@routes.post("/1.0/remote-cluster-join-token")
@documented(body=TokenRequest, response=CreatedToken, errors=(409, *WRITE_ERRORS))
async def create_token(request: web.Request) -> web.Response:
    """Create a join token; answers with the token and the command a cluster member runs."""
    wanted = await json_body(request, TokenRequest)
    expires_in = (
        validation.duration(wanted.expiry, "expiry") if wanted.expiry is not None else None
    )
    _, created = await tokens.create_token(
        request.app[POOL],
        request.app[SETTINGS],
        wanted.cluster_name,
        wanted.description,
        expires_in,
    )
    return sync_response(created)


@routes.get("/1.0/remote-cluster-join-token")
@documented(response=list[Token], errors=READ_ERRORS)
async def list_tokens(request: web.Request) -> web.Response:
    """Pending join tokens, oldest first, without secrets."""
    return sync_response(await tokens.list_tokens_with_state(request.app[POOL]))


@routes.delete("/1.0/remote-cluster-join-token/{name}")
@documented(errors=(404, *WRITE_ERRORS))
async def revoke_token(request: web.Request) -> web.Response:
    """Revoke a pending join token."""
    await tokens.revoke_token(request.app[POOL], request.match_info["name"])
    return sync_response(None)
