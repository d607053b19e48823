"""Enrolled clusters with heartbeat details written straight into the tables.

For the management benchmark and tests: fleets of thousands without thousands of TLS joins.
Single clusters go through heartbeats.store_heartbeat, the connector's own write.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from cluster_manager.heartbeats import (
    OVERWRITE_DETAILS,
    Heartbeat,
    StatusCount,
    StoragePoolUsage,
    store_heartbeat,
)

GIB = 1024**3

INSERT_CLUSTER = """
INSERT INTO remote_clusters (name, description, certificate, fingerprint, status,
                             disk_threshold, memory_threshold, joined_at)
VALUES ($1, $2, 'seeded', encode(sha256(convert_to($1, 'UTF8')), 'hex'), 'ACTIVE', $3, $4,
        now() - $5::interval)
RETURNING id
"""
# Both copies of the heartbeat time (see migration 0009).
SET_LAST_HEARTBEAT = """
WITH cluster AS (
    UPDATE remote_clusters SET last_status_update_at = now() - $2::interval WHERE id = $1
    RETURNING id, last_status_update_at
)
UPDATE remote_cluster_details d SET heartbeat_at = cluster.last_status_update_at
FROM cluster WHERE d.cluster_id = cluster.id
"""

# $1 clusters, $2 name prefix. Every cluster has three members, a local pool per member and a
# shared Ceph pool; usage varies so some are over their thresholds and some are stale. Status
# values are the daemon's (see cluster_health): every 17th cluster has a member Offline, every
# 23rd one Evacuated, every 19th 2 instances in Error, every 29th a Ceph member UNREACHABLE.
INSERT_FLEET_CLUSTERS = """
INSERT INTO remote_clusters (name, description, certificate, fingerprint, status, joined_at,
                             last_status_update_at)
SELECT $2 || lpad(i::text, 6, '0'), 'seeded cluster ' || i, 'seeded',
       encode(sha256(convert_to($2 || i, 'UTF8')), 'hex'), 'ACTIVE',
       now() - make_interval(days => 1 + i % 300),
       now() - make_interval(secs => CASE WHEN i % 50 = 0 THEN 3600 ELSE i % 60 END)
FROM generate_series(1, $1) AS i
"""
INSERT_FLEET_DETAILS = (
    """
INSERT INTO remote_cluster_details (
    cluster_id, cpu_total_count, cpu_load_1, cpu_load_5, cpu_load_15,
    memory_total_amount, memory_usage, instance_count, member_count,
    instance_statuses, member_statuses, ceph_statuses, storage_pool_usages, server_metrics, ui_url,
    name, cluster_status, joined_at, heartbeat_at, effective_memory_threshold,
    effective_disk_threshold
)
SELECT c.id, 48, (c.id % 40) / 4.0, (c.id % 30) / 4.0, (c.id % 20) / 4.0,
       384::bigint * 1073741824, (384::bigint * 1073741824) * (20 + c.id % 75) / 100,
       20 + c.id % 30 + CASE WHEN c.id % 19 = 0 THEN 2 ELSE 0 END, 3,
       jsonb_build_array(
           jsonb_build_object('status', 'Running', 'count', 15 + c.id % 20),
           jsonb_build_object('status', 'Stopped', 'count', 5 + c.id % 10))
       || CASE WHEN c.id % 19 = 0
               THEN jsonb_build_array(jsonb_build_object('status', 'Error', 'count', 2))
               ELSE '[]'::jsonb END,
       jsonb_build_array(
           jsonb_build_object('status', 'Online', 'count',
                              CASE WHEN c.id % 17 = 0 OR c.id % 23 = 0 THEN 2 ELSE 3 END))
       || CASE WHEN c.id % 17 = 0
               THEN jsonb_build_array(jsonb_build_object('status', 'Offline', 'count', 1))
               WHEN c.id % 23 = 0
               THEN jsonb_build_array(jsonb_build_object('status', 'Evacuated', 'count', 1))
               ELSE '[]'::jsonb END,
       jsonb_build_array(jsonb_build_object('status', 'ONLINE',
                                            'count', CASE WHEN c.id % 29 = 0 THEN 2 ELSE 3 END))
       || CASE WHEN c.id % 29 = 0
               THEN jsonb_build_array(jsonb_build_object('status', 'UNREACHABLE', 'count', 1))
               ELSE '[]'::jsonb END,
       jsonb_build_array(
           jsonb_build_object('name', 'local', 'member', 'm1', 'total', 1099511627776,
                              'usage', 1099511627776 * (10 + c.id % 85) / 100),
           jsonb_build_object('name', 'local', 'member', 'm2', 'total', 1099511627776,
                              'usage', 1099511627776 * (10 + c.id % 60) / 100),
           jsonb_build_object('name', 'local', 'member', 'm3', 'total', 1099511627776,
                              'usage', 1099511627776 * (10 + c.id % 40) / 100),
           jsonb_build_object('name', 'remote', 'member', '', 'total', 10995116277760,
                              'usage', 10995116277760 * (30 + c.id % 50) / 100)),
       jsonb_build_array(
           jsonb_build_object('member', 'm1', 'service', 'lxd', 'metrics_bytes', 250000),
           jsonb_build_object('member', 'm2', 'service', 'lxd', 'metrics_bytes', 250000),
           jsonb_build_object('member', 'm3', 'service', 'lxd', 'metrics_bytes', 250000)),
       'https://' || c.name || '.example:8443',
       c.name, c.status, c.joined_at, coalesce(c.last_status_update_at, c.joined_at),
       coalesce(c.memory_threshold, s.memory_threshold, 80),
       coalesce(c.disk_threshold, s.disk_threshold, 80)
FROM remote_clusters c LEFT JOIN fleet_settings s ON true
WHERE c.name LIKE $1 || '%'
"""
    + OVERWRITE_DETAILS
)


def heartbeat(
    *,
    memory: tuple[int, int] = (4 * GIB, 16 * GIB),
    pools: list[dict[str, Any]] | None = None,
    instances: dict[str, int] | None = None,
    members: dict[str, int] | None = None,
    ceph: dict[str, int] | None = None,
    cpu_total_count: int = 8,
    cpu_load_1: float = 0.5,
) -> Heartbeat:
    """A checked heartbeat with the given usage (memory is (usage, total) in bytes).

    Status values as the MicroCloud daemon sends them (see cluster_health's docstring).
    """
    instances = {"Running": 3, "Stopped": 1} if instances is None else instances
    members = {"Online": 3} if members is None else members
    ceph = {} if ceph is None else ceph
    return Heartbeat(
        cpu_total_count=cpu_total_count,
        cpu_load_1=f"{cpu_load_1:.2f}",
        cpu_load_5=f"{cpu_load_1:.2f}",
        cpu_load_15=f"{cpu_load_1:.2f}",
        memory_total_amount=memory[1],
        memory_usage=memory[0],
        instance_statuses=[StatusCount(s, n) for s, n in instances.items()],
        member_statuses=[StatusCount(s, n) for s, n in members.items()],
        ceph_statuses=[StatusCount(s, n) for s, n in ceph.items()],
        storage_pool_usages=[StoragePoolUsage(**p) for p in pools]
        if pools is not None
        else [StoragePoolUsage("local", "m1", 100 * GIB, 10 * GIB)],
        server_metrics=[],
        ui_url="https://cluster.example:8443",
    )


async def insert_cluster(
    pool: asyncpg.Pool,
    name: str,
    beat: Heartbeat | None = None,
    *,
    description: str = "",
    disk_threshold: int | None = None,
    memory_threshold: int | None = None,
    joined_ago: timedelta = timedelta(days=1),
    heartbeat_ago: timedelta = timedelta(seconds=5),
) -> int:
    """Enrol a cluster and, when ``beat`` is given, store it as a heartbeat sent a while ago."""
    cluster_id = await pool.fetchval(
        INSERT_CLUSTER, name, description, disk_threshold, memory_threshold, joined_ago
    )
    if beat is not None:
        await store_heartbeat(pool, cluster_id, beat)
        await pool.execute(SET_LAST_HEARTBEAT, cluster_id, heartbeat_ago)
    return cluster_id


async def insert_fleet(pool: asyncpg.Pool, count: int, prefix: str = "cluster-") -> None:
    """Enrol ``count`` clusters named prefix000001... that all have heartbeat details."""
    # 100,000 clusters take longer than the pool's command timeout.
    timeout = 60 + count / 500
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(INSERT_FLEET_CLUSTERS, count, prefix, timeout=timeout)
        await connection.execute(INSERT_FLEET_DETAILS, prefix, timeout=timeout)
    await pool.execute("VACUUM ANALYZE remote_clusters", timeout=timeout)
    await pool.execute("VACUUM ANALYZE remote_cluster_details", timeout=timeout)
    await pool.execute("ANALYZE fleet_settings", timeout=timeout)
