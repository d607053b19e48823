"""Join tokens: creating, listing and revoking them (the join itself is in clusters.py)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
import msgspec

from cluster_manager import fleet_settings
from cluster_manager.certificates import certificate_file_fingerprint
from cluster_manager.errors import ApiError, Conflict, NotFound
from cluster_manager.fields import Description, Name, Timestamp
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


Expiry = Annotated[
    Annotated[int, msgspec.Meta(ge=60, le=366 * 86400)]
    | Annotated[str, msgspec.Meta(pattern=r"^\d{1,9}[smhdw]?$")]
    | None,
    msgspec.Meta(
        description=(
            "lifetime: seconds, or a duration such as 30m, 12h, 7d, 2w (1 minute to 1 year); "
            "default (missing or null) the fleet's token_expiry (GET /1.0/settings)"
        )
    ),
]


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A join token to create, for the name the cluster will enrol with."""

    cluster_name: Name
    description: Description = ""
    expiry: Expiry = None


class PendingToken(msgspec.Struct, kw_only=True):
    """A pending join token (never its secret)."""

    name: str
    description: str
    expires_at: Timestamp
    created_at: Timestamp


class Token(PendingToken, kw_only=True):
    """A pending join token and whether it has expired."""

    expired: bool


class CreatedToken(PendingToken, kw_only=True):
    """A new join token, shown once, and the command a cluster member runs with it."""

    token: Annotated[str, msgspec.Meta(description="base64 join token (shown once)")]
    command: Annotated[str, msgspec.Meta(description="microcloud cluster-manager join <token>")]


class ConfigurationError(ApiError):
    """The server is not configured to hand out tokens."""

    status = 500


def token_row(row: asyncpg.Record) -> PendingToken:
    """A pending token as the APIs show it (never the secret)."""
    return PendingToken(
        name=row["name"],
        description=row["description"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
    )


async def create_token(
    pool: asyncpg.Pool,
    settings: Settings,
    name: str,
    description: str = "",
    expires_in: timedelta | None = None,
) -> tuple[JoinToken, CreatedToken]:
    """Create a join token for a cluster name; 409 if a cluster or a token has the name."""
    msgspec.convert({"cluster_name": name, "description": description}, TokenRequest)
    if not settings.connector_addresses:
        raise ConfigurationError("no connector address is configured (connector_addresses)")
    fingerprint = certificate_file_fingerprint(settings.connector_cert_file)
    default = (await fleet_settings.get_settings(pool, settings)).token_expiry
    lifetime = expires_in or timedelta(seconds=default)
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
    encoded = token.encode()
    created = CreatedToken(**dict(row), token=encoded, command=JOIN_COMMAND.format(token=encoded))
    return token, created


async def list_tokens(pool: asyncpg.Pool) -> list[PendingToken]:
    """Every pending token, oldest first, without secrets."""
    return [token_row(row) for row in await pool.fetch(SELECT_TOKENS)]


async def list_tokens_with_state(pool: asyncpg.Pool) -> list[Token]:
    """Every pending token, oldest first, without secrets, each saying whether it has expired."""
    return [Token(**dict(row)) for row in await pool.fetch(SELECT_TOKENS_WITH_STATE)]


async def revoke_token(pool: asyncpg.Pool, name: str) -> None:
    """Delete a pending token; 404 if there is none for the name."""
    if await pool.fetchval(DELETE_TOKEN, name) is None:
        raise NotFound(f"no join token for {name!r}")
