"""/1.0/audit: the audit log, and the guard recording every state-changing API call.

Administrators read the log; the guard (after sign-in) records each POST, PUT, PATCH and
DELETE under /1.0 before its handler runs, and refuses it (503) if it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from cluster_manager import audit
from cluster_manager.audit import Actor, AuditPage, AuditQuery
from cluster_manager.db import POOL
from cluster_manager.envelope import Handler, sync_response
from cluster_manager.errors import ServiceUnavailable
from cluster_manager.management.auth import access_token, current_user
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.operations import READ_ERRORS, documented
from cluster_manager.management.requests import query_model
from cluster_manager.management.roles import READ_METHODS

routes = web.RouteTableDef()


def actor_of(request: web.Request) -> Actor:
    """Who makes this request: the signed-in user, with the access token LXD is sent."""
    user = current_user(request)
    if user is None:  # the guard lets no anonymous change through; kept honest anyway
        raise ServiceUnavailable("No signed-in user to record this call for")
    return Actor(subject=user.subject, name=user.name, token=access_token(request))


@routes.get("/1.0/audit")
@documented(
    response=AuditPage,
    query=AuditQuery,
    errors=(400, *READ_ERRORS),
    role="admin",
)
async def get_audit(request: web.Request) -> web.Response:
    """Recorded calls, newest first: filter by user, cluster and time; page with before."""
    query = query_model(request.query, AuditQuery)
    return sync_response(await audit.list_entries(request.app[POOL], query))


def _is_api(path: str) -> bool:
    return path == "/1.0" or path.startswith("/1.0/")


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every state-changing /1.0 call by a signed-in user around its handler."""
    if request.method in READ_METHODS or not _is_api(request.path):
        return await handler(request)
    user = current_user(request)
    if user is None:
        return await handler(request)
    body = await request.read()
    cluster = request.match_info.get("name")
    async with audit.recorded(
        request.app[POOL],
        Actor(subject=user.subject, name=user.name),
        "manager",
        cluster,
        request.method,
        request.path_qs,
        body,
    ) as outcome:
        response = await handler(request)
        outcome.status = response.status
        outcome.result = response.reason or ""
        return response


def setup_audit(app: web.Application) -> None:
    """Add the recording guard (after sign-in) and the pruning task."""
    app.middlewares.append(audit_middleware)
    app.cleanup_ctx.append(_pruning_task)


@contextlib.asynccontextmanager
async def _pruning_task(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    task = asyncio.create_task(audit.prune_forever(app[POOL], settings.audit_retention_days))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
