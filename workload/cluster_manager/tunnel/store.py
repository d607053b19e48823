"""Which unit holds each cluster's tunnel: the remote_cluster_tunnels table (migration 0004).

Migration 0010 adds remote_cluster_tunnel_units: each unit's ``alive_at``, refreshed every
``tunnel_liveness_interval`` (and by each claim). A unit not refreshed for
:data:`EXPIRY_INTERVALS` intervals died and did not restart: its tunnels route nowhere, and any
unit deletes its rows.
"""

from __future__ import annotations

import asyncpg

CHANNEL = "remote_cluster_tunnel"

CLAIM = """
WITH unit AS (
    INSERT INTO remote_cluster_tunnel_units (unit_address) VALUES ($2)
    ON CONFLICT (unit_address) DO UPDATE SET alive_at = now()
)
INSERT INTO remote_cluster_tunnels (cluster_id, unit_address, session)
SELECT id, $2, $3 FROM remote_clusters WHERE id = $1 AND status = 'ACTIVE'
ON CONFLICT (cluster_id) DO UPDATE
    SET unit_address = EXCLUDED.unit_address, session = EXCLUDED.session, connected_at = now()
RETURNING connected_at
"""
RELEASE = "DELETE FROM remote_cluster_tunnels WHERE cluster_id = $1 AND session = $2"
RELEASE_UNIT = "DELETE FROM remote_cluster_tunnels WHERE unit_address = $1"
SELECT_SESSIONS = """
SELECT cluster_id, session FROM remote_cluster_tunnels WHERE cluster_id = ANY($1::bigint[])
"""
SELECT_ROUTE = """
SELECT c.id, t.unit_address, t.session
FROM remote_clusters c
LEFT JOIN (
    remote_cluster_tunnels t JOIN remote_cluster_tunnel_units u
        ON u.unit_address = t.unit_address AND u.alive_at > now() - make_interval(secs => $2)
) ON t.cluster_id = c.id
WHERE c.name = $1 AND c.status = 'ACTIVE'
"""
REFRESH_UNIT = """
INSERT INTO remote_cluster_tunnel_units (unit_address) VALUES ($1)
ON CONFLICT (unit_address) DO UPDATE SET alive_at = now()
"""
SELECT_UNIT_SESSIONS = (
    "SELECT cluster_id, session FROM remote_cluster_tunnels WHERE unit_address = $1"
)
# Dead units and their rows, in one statement (the rows go in the same snapshot as the unit).
DELETE_EXPIRED = """
WITH dead AS (
    DELETE FROM remote_cluster_tunnel_units
    WHERE alive_at <= now() - make_interval(secs => $1)
    RETURNING unit_address
)
DELETE FROM remote_cluster_tunnels WHERE unit_address IN (SELECT unit_address FROM dead)
"""
EXPIRY_INTERVALS = 3

# Only tunnels on units alive within the expiry (as SELECT_ROUTE): a dead unit's rows stay
# until some unit expires them, and those clusters are not reachable.
SELECT_CONNECTED = """
SELECT c.name
FROM remote_clusters c
JOIN remote_cluster_tunnels t ON t.cluster_id = c.id
JOIN remote_cluster_tunnel_units u
    ON u.unit_address = t.unit_address AND u.alive_at > now() - make_interval(secs => $3)
WHERE c.status = 'ACTIVE' AND ($1::text IS NULL OR c.name > $1)
ORDER BY c.name
LIMIT $2
"""


async def connected_clusters(
    pool: asyncpg.Pool, after: str | None, limit: int, liveness_interval: float
) -> list[str]:
    """Names of clusters with a tunnel on a live unit, in name order after ``after``."""
    rows = await pool.fetch(SELECT_CONNECTED, after, limit, expiry_seconds(liveness_interval))
    return [r["name"] for r in rows]


async def claim(pool: asyncpg.Pool, cluster_id: int, unit_address: str, session: str) -> bool:
    """Record this unit's new tunnel as the cluster's one; False if the cluster is gone."""
    return await pool.fetchval(CLAIM, cluster_id, unit_address, session) is not None


async def release(pool: asyncpg.Pool, cluster_id: int, session: str) -> None:
    """Forget a tunnel that ended, unless a newer one took its place."""
    await pool.execute(RELEASE, cluster_id, session)


async def release_unit(pool: asyncpg.Pool, unit_address: str) -> None:
    """Forget every tunnel a unit held before it (re)started: they died with the process."""
    await pool.execute(RELEASE_UNIT, unit_address)


def expiry_seconds(liveness_interval: float) -> float:
    """How old a row may be before it counts as not connected."""
    return EXPIRY_INTERVALS * liveness_interval


async def route(
    pool: asyncpg.Pool, cluster_name: str, liveness_interval: float
) -> asyncpg.Record | None:
    """The cluster's id and where its tunnel lives (unit_address None when it has none)."""
    return await pool.fetchrow(SELECT_ROUTE, cluster_name, expiry_seconds(liveness_interval))


async def sessions(pool: asyncpg.Pool, cluster_ids: list[int]) -> dict[int, str]:
    """The current session of each cluster that has a row."""
    rows = await pool.fetch(SELECT_SESSIONS, cluster_ids)
    return {row["cluster_id"]: row["session"] for row in rows}


async def refresh(pool: asyncpg.Pool, unit_address: str) -> dict[int, str]:
    """Mark the unit alive; return its rows (cluster id -> session)."""
    await pool.execute(REFRESH_UNIT, unit_address)
    rows = await pool.fetch(SELECT_UNIT_SESSIONS, unit_address)
    return {row["cluster_id"]: row["session"] for row in rows}


async def expire(pool: asyncpg.Pool, liveness_interval: float) -> None:
    """Delete the units that stopped refreshing, and their rows."""
    await pool.execute(DELETE_EXPIRED, expiry_seconds(liveness_interval))
