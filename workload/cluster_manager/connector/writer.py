"""Heartbeats written to PostgreSQL together: one statement for those that arrive meanwhile.

A heartbeat costs the server one database round trip and PostgreSQL one statement and one
commit; at a few hundred heartbeats a second that is a large part of both. The writer keeps
one write in flight per process: a heartbeat arriving while none is in flight is written at
once (alone, with the one-row statement, so a quiet server answers as fast as before); those
arriving while one is in flight wait for it and then go together in the next statement
(:func:`cluster_manager.heartbeats.store_heartbeats`, at most ``MAX_BATCH`` rows). Each
handler still learns whether its own cluster was written, and a failed write fails exactly the
heartbeats in it: when PostgreSQL refuses a batch, its heartbeats are written one at a time,
so that only one that fails alone fails.

Two heartbeats of one cluster in the same batch: the later one is written and both callers get
its result (the earlier would have been overwritten a moment later anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from cluster_manager import heartbeats
from cluster_manager.db import POOL
from cluster_manager.heartbeats import Heartbeat

logger = logging.getLogger(__name__)

MAX_BATCH = 256  # rows in one statement (each row is a few KiB of parameters at most)


class HeartbeatWriter:
    """Coalesces the heartbeats of one process into as few statements as the database allows."""

    def __init__(self, pool: asyncpg.Pool, max_batch: int = MAX_BATCH) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self._pending: dict[int, tuple[Heartbeat, list[asyncio.Future[bool]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.statements = 0  # statements written, for tests and the benchmark
        self.written = 0  # heartbeats written

    async def store(self, cluster_id: int, heartbeat: Heartbeat) -> bool:
        """Write one heartbeat (with others); False when the cluster no longer exists."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry = self._pending.get(cluster_id)
        if entry is None:
            self._pending[cluster_id] = (heartbeat, [future])
        else:
            self._pending[cluster_id] = (heartbeat, [*entry[1], future])
        if self._task is None:
            self._task = asyncio.create_task(self._write_all())
        # A cancelled request must not cancel the write the others wait on: only its future.
        return await future

    async def _write_all(self) -> None:
        try:
            while self._pending:
                batch = dict(list(self._pending.items())[: self.max_batch])
                for cluster_id in batch:
                    del self._pending[cluster_id]
                await self._write(batch)
        finally:
            self._task = None

    async def _write(self, batch: dict[int, tuple[Heartbeat, list[asyncio.Future[bool]]]]) -> None:
        try:
            written = await heartbeats.store_heartbeats(
                self.pool, {cluster_id: beat for cluster_id, (beat, _) in batch.items()}
            )
            self.statements += 1
        except (asyncpg.PostgresError, asyncpg.DataError) as error:
            if len(batch) == 1:
                _fail(next(iter(batch.values()))[1], error)
                return
            # The database refused the statement (a value it cannot take, or a deadlock with
            # another process's batch locking the same rows in another order): write these
            # one at a time, so that only a heartbeat that fails alone fails.
            written = set()
            for cluster_id, (beat, futures) in batch.items():
                try:
                    if await heartbeats.store_heartbeat(self.pool, cluster_id, beat):
                        written.add(cluster_id)
                    self.statements += 1
                except Exception as one_error:
                    _fail(futures, one_error)
        except Exception as error:
            # Unreachable database, timeout: every heartbeat of the batch fails as it would alone.
            for _, futures in batch.values():
                _fail(futures, error)
            return
        self.written += len(written)
        for cluster_id, (_, futures) in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(cluster_id in written)

    async def close(self) -> None:
        """Finish the writes under way (at app cleanup)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


def _fail(futures: list[asyncio.Future[bool]], error: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)


WRITER = web.AppKey("heartbeat_writer", HeartbeatWriter)


async def writer_context(app: web.Application) -> AsyncIterator[None]:
    """Create the app's writer on its pool (after pool_context), finish its writes at cleanup."""
    writer = app[WRITER] = HeartbeatWriter(app[POOL])
    yield
    await writer.close()
