"""The PostgreSQL connection pool and the versioned migrations applied at start."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import TypeVar

import asyncpg
import msgspec
from aiohttp import web

from cluster_manager.settings import Settings

logger = logging.getLogger(__name__)

POOL = web.AppKey("pool", asyncpg.Pool)
_ENCODER = msgspec.json.Encoder()

DEADLOCK_ATTEMPTS = 3
T = TypeVar("T")


async def retry_on_deadlock(write: Callable[[], Awaitable[T]]) -> T:
    """Run a many-row write again when PostgreSQL broke a deadlock by failing it.

    The connector locks many clusters' rows at once (heartbeat_writer's bursts); an operator's
    write over many clusters (fleet thresholds, bulk remove or thresholds) that meets one can
    be the statement PostgreSQL fails to break the cycle. Each such write is one statement, all
    or nothing, so running it again is safe; the operator sees no error for it.
    """
    for _ in range(DEADLOCK_ATTEMPTS - 1):
        try:
            return await write()
        except asyncpg.DeadlockDetectedError:
            logger.warning("a write over many clusters met a deadlock; running it again")
    return await write()  # the last attempt: its error is the caller's


# Any constant shared by every unit: pg_advisory_lock serialises migrations across processes.
MIGRATION_LOCK_ID = 0x4D434D  # "MCM"

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"


def json_text(value: object) -> str:
    """JSON for a json/jsonb parameter: plain values and declared models (msgspec Structs)."""
    return _ENCODER.encode(value).decode()


# Database connections of one server process, beyond its pools: its one LISTEN connection,
# shared by the revocation list, the identity cache and the tunnel hub (notifications.py).
LISTEN_CONNECTIONS = 1


@dataclasses.dataclass(frozen=True)
class PoolSizes:
    """The largest size of each pool of one server process."""

    connector: int
    management: int
    ops: int

    @property
    def per_process(self) -> int:
        """Connections one process may hold: its pools and its LISTEN connections."""
        return self.connector + self.management + self.ops + LISTEN_CONNECTIONS


def pool_sizes(workers: int) -> PoolSizes:
    """Pool sizes of each of a unit's ``workers`` processes (0 counts as 1).

    A unit with one process keeps the sizes it always had (10 connector, 5 management, 2 ops).
    With more, a unit's pools are shared out between its processes, each keeping at least 2
    connector, 2 management and 1 ops connection (a heartbeat is one statement of well under a
    millisecond, so 2 connections keep up with a core's worth of heartbeats). Connections a unit
    may open, LISTEN included::

        per_process = connector + management + ops + 1
        per_unit    = workers * per_process
        units * per_unit + 3 (superuser_reserved_connections) + migrations and actions (2)
            <= max_connections

    e.g. 1 worker: 18 a unit; 2: 2 * 9 = 18; 4: 4 * 6 = 24; 8: 8 * 6 = 48.
    """
    workers = max(1, workers)
    return PoolSizes(
        connector=max(2, 10 // workers),
        management=max(2, 5 // workers),
        ops=max(1, 2 // workers),
    )


async def _init_connection(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json_text, decoder=msgspec.json.decode, schema="pg_catalog"
        )


async def _reset_connection(connection: asyncpg.Connection) -> None:
    """Undo what a request can leave on a pooled connection: only an open transaction.

    Nothing in this service keeps session state on a pooled connection (LISTEN, advisory locks
    and migrations use connections of their own; nothing issues SET), so asyncpg's default
    reset, four statements (pg_advisory_unlock_all, CLOSE ALL, UNLISTEN *, RESET ALL) and a
    round trip on every release, is not needed: it doubled the statements of a heartbeat.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open a connection pool whose connections speak JSON for json/jsonb columns."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=10,
        timeout=10,
        max_inactive_connection_lifetime=300,
        reset=_reset_connection,
        # The fleet-wide reporting queries cross jit_above_cost, and compiling them costs more
        # (about 40 ms) than running them; no statement of ours gains from JIT.
        server_settings={"jit": "off"},
    )


def pool_context(settings: Settings, server: str = "connector"):
    """Return a cleanup_ctx generator that opens the pool at start and closes it at shutdown.

    ``server`` names the pool in :class:`PoolSizes`; its size follows ``settings.workers``.
    """
    max_size = getattr(pool_sizes(settings.workers), server)

    async def open_pool(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await create_pool(settings.database_dsn, max_size=max_size)
        yield
        await app[POOL].close()

    return open_pool


def available_migrations() -> list[tuple[int, str, str]]:
    """The migrations shipped with the package: (version, file name, SQL), in order."""
    found = []
    for entry in resources.files("cluster_manager.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql"):
            found.append((int(name.split("_", 1)[0]), name, entry.read_text()))
    return sorted(found)


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations under an advisory lock; return the names applied."""
    connection = await asyncpg.connect(dsn, timeout=10)
    applied_now = []
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            await connection.execute(CREATE_MIGRATIONS_TABLE)
            applied = {row["version"] for row in await connection.fetch(SELECT_APPLIED)}
            for version, name, sql in available_migrations():
                if version in applied:
                    continue
                async with connection.transaction():
                    await connection.execute(sql)
                    await connection.execute(INSERT_APPLIED, version, name)
                logger.info("applied migration %s", name)
                applied_now.append(name)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await connection.close()
    return applied_now
