"""Running the Management API's read-only reporting statements (fleet pages and aggregates).

They scan the whole fleet, which makes PostgreSQL's cost estimate cross ``jit_above_cost``;
compiling them then costs more (about 40 ms) than running them. Each runs in a short read-only
transaction with JIT off for that transaction only.
"""

from __future__ import annotations

from typing import Any

import asyncpg

SET_JIT_OFF = "SET LOCAL jit = off"


async def fetch(pool: asyncpg.Pool, statement: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one reporting statement."""
    async with pool.acquire() as connection, connection.transaction(readonly=True):
        await connection.execute(SET_JIT_OFF)
        return await connection.fetch(statement, *args)
