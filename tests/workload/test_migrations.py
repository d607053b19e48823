"""Migrations: applied once, safely, even when several units start together."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import pytest
from cluster_manager import db
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
