"""Migrations: applied once, safely, even when several units start together."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import pytest
from cluster_manager import cluster_listing, db, overview
from cluster_manager.settings import Settings
from support import with_database


@pytest.fixture
async def empty_database(postgres_dsn):
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute("DROP DATABASE IF EXISTS mcm_empty WITH (FORCE)")
    await admin.execute("CREATE DATABASE mcm_empty")
    await admin.close()
    yield with_database(postgres_dsn, "mcm_empty")
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute("DROP DATABASE IF EXISTS mcm_empty WITH (FORCE)")
    await admin.close()


async def test_two_processes_migrating_at_once_apply_each_migration_once(empty_database):
    command = [sys.executable, "-m", "cluster_manager.cli", "migrate"]
    env = {"CLUSTER_MANAGER_DATABASE_DSN": empty_database, "PATH": "/usr/bin:/bin"}
    processes = [
        await asyncio.create_subprocess_exec(
            *command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = [await p.communicate() for p in processes]

    assert [p.returncode for p in processes] == [0, 0, 0], results
    outputs = sorted(out.decode() for out, _ in results)
    assert outputs[0].startswith("applied 0 migration")
    assert outputs[-1].startswith(f"applied {len(db.available_migrations())} migration")
    assert sum(o.startswith("applied 0 ") for o in outputs) == 2
    connection = await asyncpg.connect(empty_database)
    try:
        versions = [r["version"] for r in await connection.fetch(db.SELECT_APPLIED)]
        tables = {
            r["tablename"]
            for r in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
    finally:
        await connection.close()
    assert versions
    assert sorted(versions) == sorted(set(versions))
    assert {"remote_clusters", "remote_cluster_tokens", "remote_cluster_details"} <= tables


async def test_migrating_again_changes_nothing(database_dsn):
    assert await db.migrate(database_dsn) == []


async def migrate_to(dsn: str, last_version: int) -> None:
    """Apply the shipped migrations up to ``last_version``, as an older release did."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(db.CREATE_MIGRATIONS_TABLE)
        for version, name, sql in db.available_migrations():
            if version <= last_version:
                async with connection.transaction():
                    await connection.execute(sql)
                    await connection.execute(db.INSERT_APPLIED, version, name)
    finally:
        await connection.close()


# A heartbeat as schema 0005 stored it (member statuses as the daemon sends them, see
# test_fleet_health's docstring), the Ceph list as JSON null (a Go nil slice).
OLD_CLUSTERS = """
INSERT INTO remote_clusters (name, certificate, fingerprint, memory_threshold, disk_threshold,
                             last_status_update_at)
VALUES ('kept', 'pem', 'f1', 80, 90, now()), ('silent', 'pem', 'f2', 80, 80, NULL)
"""
OLD_DETAILS = """
INSERT INTO remote_cluster_details (
    cluster_id, cpu_total_count, cpu_load_1, cpu_load_5, cpu_load_15, memory_total_amount,
    memory_usage, instance_count, member_count, instance_statuses, member_statuses,
    ceph_statuses, storage_pool_usages, server_metrics, ui_url)
SELECT id, 0, 1.5, 1, 1, 100, 10, 4, 3,
       '[{"status": "Running", "count": 3}, {"status": "Error", "count": 1}]',
       '[{"status": "Online", "count": 1}, {"status": "Offline", "count": 2}]',
       'null', '[]', '[]', ''
FROM remote_clusters WHERE name = 'kept'
"""


async def test_upgrade_from_0005_keeps_clusters_and_computes_their_health(empty_database):
    await migrate_to(empty_database, 5)
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute(OLD_CLUSTERS)
        await connection.execute(OLD_DETAILS)
    finally:
        await connection.close()

    applied = await db.migrate(empty_database)

    assert applied[0] == "0006_fleet_health.sql"  # and any later ones
    pool = await db.create_pool(empty_database, max_size=2)
    try:
        counts = await pool.fetchrow(
            "SELECT member_down_count, member_evacuated_count, instance_error_count,"
            " ceph_down_count FROM remote_cluster_details WHERE cpu_total_count IS NOT NULL"
        )
        thresholds = await pool.fetch(
            "SELECT name, memory_threshold, disk_threshold FROM remote_clusters ORDER BY name"
        )
        defaults = await pool.fetch("SELECT memory_threshold, disk_threshold FROM fleet_settings")
        settings = Settings(database_dsn=empty_database)
        kept = await cluster_listing.get_cluster_view(pool, settings, "kept")
    finally:
        await pool.close()
    assert dict(counts) == {
        "member_down_count": 2,
        "member_evacuated_count": 0,
        "instance_error_count": 1,
        "ceph_down_count": 0,
    }
    assert [tuple(r) for r in thresholds] == [("kept", None, 90), ("silent", None, None)]
    assert [tuple(r) for r in defaults] == [(80, 80)]
    assert kept.health == "error"
    assert [w.message for w in kept.warnings] == ["2 of 3 members Offline", "1 instance in Error"]
    assert (kept.memory_threshold, kept.memory_threshold_source) == (80, "default")
    assert (kept.disk_threshold, kept.disk_threshold_source) == (90, "cluster")


async def test_upgrade_from_0006_keeps_clusters_and_serves_the_overview_and_search(
    empty_database,
):
    await migrate_to(empty_database, 6)
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute(OLD_CLUSTERS)
        await connection.execute(OLD_DETAILS)
        before = await connection.fetch(
            "SELECT name, memory_threshold, disk_threshold, last_status_update_at"
            " FROM remote_clusters ORDER BY name"
        )
    finally:
        await connection.close()

    applied = await db.migrate(empty_database)

    assert applied[0] == "0007_fleet_summary.sql"  # and any later ones
    pool = await db.create_pool(empty_database, max_size=2)
    try:
        after = await pool.fetch(
            "SELECT name, memory_threshold, disk_threshold, last_status_update_at"
            " FROM remote_clusters ORDER BY name"
        )
        indexes = {
            r["indexname"]
            for r in await pool.fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = $1", "remote_clusters"
            )
        }
        settings = Settings(database_dsn=empty_database)
        summary = await overview.fleet_overview(pool, settings)
        stored = await pool.fetchval("SELECT count(*) FROM fleet_summary")
        found = await cluster_listing.list_cluster_page(
            pool, settings, cluster_listing.ClusterQuery(search="ep")
        )
    finally:
        await pool.close()
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    assert "remote_clusters_name_trgm" in indexes  # Debian's postgresql ships pg_trgm
    assert stored == 1
    assert summary.clusters.total == 2
    assert summary.clusters.by_health.error == 1
    assert summary.warnings.clusters[0].name == "kept"
    assert [c.name for c in found.clusters] == ["kept"]


async def test_upgrade_from_0008_gives_every_cluster_its_list_row_and_keeps_heartbeats(
    empty_database,
):
    """Migration 0009: a details row per cluster (silent ones too), the list's indexes."""
    await migrate_to(empty_database, 8)
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute(OLD_CLUSTERS)
        await connection.execute(OLD_DETAILS)
        await connection.execute(
            "UPDATE remote_clusters SET memory_threshold = 5 WHERE name = 'silent'"
        )
        before = await connection.fetch(
            "SELECT name, memory_threshold, disk_threshold, joined_at, last_status_update_at"
            " FROM remote_clusters ORDER BY name"
        )
        details_before = await connection.fetch(
            "SELECT cluster_id, instance_statuses::text, member_statuses::text, memory_usage"
            " FROM remote_cluster_details"
        )
    finally:
        await connection.close()

    applied = await db.migrate(empty_database)

    assert applied[0] == "0009_list_indexes.sql"  # and any later ones
    pool = await db.create_pool(empty_database, max_size=2)
    try:
        after = await pool.fetch(
            "SELECT name, memory_threshold, disk_threshold, joined_at, last_status_update_at"
            " FROM remote_clusters ORDER BY name"
        )
        rows = {
            r["name"]: dict(r)
            for r in await pool.fetch(
                "SELECT d.name, d.cluster_status, d.joined_at = c.joined_at AS joined,"
                " d.heartbeat_at, c.last_status_update_at, d.health_rank,"
                " d.effective_memory_threshold, d.effective_disk_threshold, d.cpu_total_count"
                " FROM remote_cluster_details d JOIN remote_clusters c ON c.id = d.cluster_id"
            )
        }
        details_after = await pool.fetch(
            "SELECT cluster_id, instance_statuses::text, member_statuses::text, memory_usage"
            " FROM remote_cluster_details WHERE cpu_total_count IS NOT NULL"
        )
        indexes = {
            r["indexname"]
            for r in await pool.fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = $1", "remote_cluster_details"
            )
        }
        settings = Settings(database_dsn=empty_database)
        by_health = await cluster_listing.list_cluster_page(
            pool, settings, cluster_listing.ClusterQuery(sort="health")
        )
        last = await cluster_listing.list_cluster_page(
            pool, settings, cluster_listing.ClusterQuery(sort="memory_usage_ratio", offset=1)
        )
        joined = await pool.fetchval(
            "INSERT INTO remote_clusters (name, certificate, fingerprint)"
            " VALUES ('new', 'pem', 'f3') RETURNING id"
        )
        new_row = await pool.fetchrow(
            "SELECT name, heartbeat_at, health_rank, effective_memory_threshold"
            " FROM remote_cluster_details WHERE cluster_id = $1",
            joined,
        )
    finally:
        await pool.close()
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    assert [tuple(r) for r in details_after] == [tuple(r) for r in details_before]
    assert rows["kept"]["heartbeat_at"] == rows["kept"]["last_status_update_at"]
    assert rows["kept"]["health_rank"] == 1  # two members Offline: error
    assert (
        rows["kept"]["effective_memory_threshold"],
        rows["kept"]["effective_disk_threshold"],
    ) == (80, 90)
    assert rows["silent"]["cpu_total_count"] is None  # no heartbeat: an empty row
    assert rows["silent"]["heartbeat_at"] is None
    assert rows["silent"]["health_rank"] == 3  # pending
    assert rows["silent"]["effective_memory_threshold"] == 5
    assert all(r["joined"] and r["cluster_status"] == "ACTIVE" for r in rows.values())
    assert {
        "remote_cluster_details_health",
        "remote_cluster_details_memory_desc",
        "remote_cluster_details_member_statuses",
    } <= indexes
    assert [(c.name, c.health) for c in by_health.clusters] == [
        ("kept", "error"),
        ("silent", "pending"),
    ]
    assert [c.name for c in last.clusters] == ["silent"]  # no figure: last
    assert dict(new_row) == {
        "name": "new",
        "heartbeat_at": None,
        "health_rank": 3,
        "effective_memory_threshold": 80,
    }
