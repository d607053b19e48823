"""Which unit holds each cluster's tunnel: the remote_cluster_tunnels table (migration 0004)."""

from __future__ import annotations

import asyncpg

CHANNEL = "remote_cluster_tunnel"

CLAIM = """
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
FROM remote_clusters c LEFT JOIN remote_cluster_tunnels t ON t.cluster_id = c.id
WHERE c.name = $1 AND c.status = 'ACTIVE'
"""

SELECT_CONNECTED = """
SELECT c.name
FROM remote_clusters c JOIN remote_cluster_tunnels t ON t.cluster_id = c.id
WHERE c.status = 'ACTIVE' AND ($1::text IS NULL OR c.name > $1)
ORDER BY c.name
LIMIT $2
"""


async def connected_clusters(pool: asyncpg.Pool, after: str | None, limit: int) -> list[str]:
    """Names of clusters with a tunnel on some unit, in name order after ``after``."""
    return [r["name"] for r in await pool.fetch(SELECT_CONNECTED, after, limit)]


async def claim(pool: asyncpg.Pool, cluster_id: int, unit_address: str, session: str) -> bool:
    """Record this unit's new tunnel as the cluster's one; False if the cluster is gone."""
    return await pool.fetchval(CLAIM, cluster_id, unit_address, session) is not None


async def release(pool: asyncpg.Pool, cluster_id: int, session: str) -> None:
    """Forget a tunnel that ended, unless a newer one took its place."""
    await pool.execute(RELEASE, cluster_id, session)


async def release_unit(pool: asyncpg.Pool, unit_address: str) -> None:
    """Forget every tunnel a unit held before it (re)started: they died with the process."""
    await pool.execute(RELEASE_UNIT, unit_address)


async def route(pool: asyncpg.Pool, cluster_name: str) -> asyncpg.Record | None:
    """The cluster's id and where its tunnel lives (unit_address None when it has none)."""
    return await pool.fetchrow(SELECT_ROUTE, cluster_name)
