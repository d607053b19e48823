"""Join tokens: creating, listing and revoking them (the join itself is in clusters.py)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from cluster_manager import validation
from cluster_manager.certificates import certificate_file_fingerprint
from cluster_manager.errors import ApiError, Conflict, NotFound
from cluster_manager.join_token import JoinToken
from cluster_manager.settings import Settings

INSERT_TOKEN = """
INSERT INTO remote_cluster_tokens (name, secret, description, expires_at)
SELECT $1, $2, $3, $4
WHERE NOT EXISTS (SELECT 1 FROM remote_clusters WHERE name = $1)
ON CONFLICT (name) DO NOTHING
RETURNING name, description, expires_at, created_at
"""
SELECT_CLUSTER_NAME = "SELECT 1 FROM remote_clusters WHERE name = $1"
SELECT_TOKENS = """
SELECT name, description, expires_at, created_at
FROM remote_cluster_tokens ORDER BY created_at, name
"""
DELETE_TOKEN = "DELETE FROM remote_cluster_tokens WHERE name = $1 RETURNING name"
SELECT_TOKENS_WITH_STATE = """
SELECT name, description, expires_at, created_at, expires_at <= now() AS expired
FROM remote_cluster_tokens ORDER BY created_at, name
"""
JOIN_COMMAND = "microcloud cluster-manager join {token}"


class ConfigurationError(ApiError):
    """The server is not configured to hand out tokens."""

    status = 500


def token_row(row: asyncpg.Record) -> dict[str, Any]:
    """A pending token as the APIs show it (never the secret)."""
    return {
        "name": row["name"],
        "description": row["description"],
        "expires_at": row["expires_at"].isoformat(),
        "created_at": row["created_at"].isoformat(),
    }


async def create_token(
    pool: asyncpg.Pool,
    settings: Settings,
    name: str,
    description: str = "",
    expires_in: timedelta | None = None,
) -> tuple[JoinToken, dict[str, Any]]:
    """Create a join token for a cluster name; 409 if a cluster or a token has the name."""
    validation.cluster_name(name)
    validation.text(description, "description", validation.MAX_DESCRIPTION)
    if not settings.connector_addresses:
        raise ConfigurationError("no connector address is configured (connector_addresses)")
    fingerprint = certificate_file_fingerprint(settings.connector_cert_file)
    lifetime = expires_in or timedelta(seconds=settings.token_expiry)
    expires_at = datetime.now(UTC) + lifetime
    secret = secrets.token_urlsafe(32)
    row = await pool.fetchrow(INSERT_TOKEN, name, secret, description, expires_at)
    if row is None:
        if await pool.fetchval(SELECT_CLUSTER_NAME, name):
            raise Conflict(f"a cluster named {name!r} is already enrolled")
        raise Conflict(f"a join token for {name!r} already exists")
    token = JoinToken(
        secret=secret,
        expires_at=expires_at,
        addresses=settings.connector_addresses,
        server_name=name,
        fingerprint=fingerprint,
    )
    return token, token_row(row)


async def list_tokens(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every pending token, oldest first, without secrets."""
    return [token_row(row) for row in await pool.fetch(SELECT_TOKENS)]


async def list_tokens_with_state(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every pending token, oldest first, without secrets, each saying whether it has expired."""
    return [
        {**token_row(row), "expired": row["expired"]}
        for row in await pool.fetch(SELECT_TOKENS_WITH_STATE)
    ]


def join_command(token: JoinToken) -> str:
    """The command a MicroCloud member runs to enrol with the token."""
    return JOIN_COMMAND.format(token=token.encode())


async def revoke_token(pool: asyncpg.Pool, name: str) -> None:
    """Delete a pending token; 404 if there is none for the name."""
    if await pool.fetchval(DELETE_TOKEN, name) is None:
        raise NotFound(f"no join token for {name!r}")
