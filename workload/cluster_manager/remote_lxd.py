"""Calls to a cluster's LXD through its tunnel, recorded in the audit log.

Every caller (Management API, CLI, charm actions, fleet fan-out) goes through :func:`call`:
a state-changing call (anything but GET) is recorded before it is sent and refused if it
cannot be; a GET is recorded too when ``audit_read_calls`` is set.

Credentials: a call for a signed-in user carries that user's OIDC access token as
``Authorization: Bearer <token>`` in the tunnel frame (the MicroCloud daemon copies only
``Authorization`` and ``Cookie`` onto its request to LXD, canonical/microcloud f26e73c0
``cmd/microcloudd/cluster_manager_tunnel.go`` lines 251-252, and has no client certificate of
its own for it), so LXD authenticates the person and applies its own authorisation, as
upstream's manager does (canonical/microcloud-cluster-manager f4005ea1
``internal/app/management-api/api/v1/remote_cluster.go`` line 370). Calls without a user
(CLI, charm actions) carry none: the cluster's LXD must let them by otherwise, or answers 403.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from cluster_manager import audit
from cluster_manager.audit import Actor
from cluster_manager.settings import Settings
from cluster_manager.tunnel import Tunnels


@dataclasses.dataclass(frozen=True)
class Remote:
    """What a call to clusters needs: the tunnels, the database and the settings."""

    tunnels: Tunnels
    pool: asyncpg.Pool
    settings: Settings


NO_CREDENTIALS_HINT = (
    "this call carried no user credentials (the command line and charm actions send none):"
    " the cluster's LXD must trust such calls otherwise, or use the Management API signed in"
)
REFUSED_HINT = (
    "the cluster's LXD refused the signed-in user's OIDC token: it must trust the same"
    " provider (lxc config set oidc.issuer=... oidc.client.id=... oidc.audience=...) and"
    " grant that user access"
)


def refusal_hint(status: int, actor: Actor | None) -> str:
    """Why LXD answered 401 or 403 to a call of ``actor`` ("" for other statuses)."""
    if status not in (401, 403):
        return ""
    return REFUSED_HINT if actor is not None and actor.token else NO_CREDENTIALS_HINT


def _result(status: int, envelope: dict[str, Any] | None) -> str:
    if envelope is None:
        return "no LXD response"
    if envelope.get("type") == "error" or status >= 400:
        return str(envelope.get("error") or "error")
    return str(envelope.get("status") or "ok")


async def call(
    remote: Remote,
    actor: Actor,
    cluster: str,
    method: str,
    path: str,
    body: bytes | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """Send one LXD call to ``cluster`` (recorded unless a GET with reads not recorded)."""
    method = method.upper()
    headers = actor.lxd_headers()
    if method == "GET" and not remote.settings.audit_read_calls:
        return await remote.tunnels.request(cluster, method, path, body, headers=headers)
    async with audit.recorded(
        remote.pool, actor, "cluster", cluster, method, path, body
    ) as outcome:
        status, envelope = await remote.tunnels.request(
            cluster, method, path, body, headers=headers
        )
        outcome.status, outcome.result = status, _result(status, envelope)
        return status, envelope
