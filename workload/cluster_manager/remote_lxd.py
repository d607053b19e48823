"""Calls to a cluster's LXD through its tunnel, recorded in the audit log.

Every caller (Management API, CLI, charm actions, fleet fan-out) goes through :func:`call`:
a state-changing call (anything but GET) is recorded before it is sent and refused if it
cannot be; a GET is recorded too when ``audit_read_calls`` is set.
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
    if method == "GET" and not remote.settings.audit_read_calls:
        return await remote.tunnels.request(cluster, method, path, body)
    async with audit.recorded(
        remote.pool, actor, "cluster", cluster, method, path, body
    ) as outcome:
        status, envelope = await remote.tunnels.request(cluster, method, path, body)
        outcome.status, outcome.result = status, _result(status, envelope)
        return status, envelope
