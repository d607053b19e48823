"""Heartbeats that arrive together are written together: one statement for a burst.

A heartbeat's write costs PostgreSQL about 0.75 ms of CPU and the connector a round trip
(a loopback send is a tenth of its CPU per heartbeat); nearly all of it is per statement, not
per row (17 index entries, the commit, parse and bind). Measured on PostgreSQL 15 with this
schema, CPU per heartbeat written (PostgreSQL, and the client's asyncpg work)::

    rows per statement      1      2      4      8     16     32
    PostgreSQL ms       0.857  0.537  0.343  0.243  0.207  0.173
    client ms           0.106  0.067  0.047  0.031  0.021  0.012

So under load the connector holds each heartbeat up to :data:`LINGER` for others, and writes
them all with :data:`STORE_HEARTBEATS` (at once when every open connection that could still
bring one is waiting already: a few clients sending back to back are not slowed down);
each handler still answers only after its own row is committed, and still learns whether
its cluster exists (a removed cluster has no row to update: refused, as before). A
heartbeat arriving when none came in the last :data:`LINGER` (a quiet fleet) is written at
once with the single-row statement, so a small fleet's latency and cost do not change.

Each burst keeps the newest heartbeat of a cluster (a cluster never has two in flight; if one
does, both answers are the newer's) and lists clusters by id. Two units writing bursts that
share clusters could deadlock on row locks; PostgreSQL breaks the cycle by failing one
statement, whose heartbeats are then written one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

import asyncpg
from aiohttp import web

from cluster_manager.db import POOL, json_text
from cluster_manager.heartbeats import (
    OVERWRITE_DETAILS,
    Heartbeat,
    metrics_summary,
    store_heartbeat,
)
from cluster_manager.metrics import HEARTBEAT_WRITES

logger = logging.getLogger(__name__)

LINGER = 0.02  # seconds a heartbeat waits for others, when another came this recently
MAX_BATCH = 64  # heartbeats in one statement; a full burst is written at once

# STORE_HEARTBEAT (heartbeats.py) for many clusters: parameters are one array per column;
# JSON goes as text (asyncpg's codec does not reach array elements) and is cast here.
STORE_HEARTBEATS = (
    """
WITH input AS (
    SELECT * FROM unnest(
        $1::bigint[], $2::integer[], $3::float8[], $4::float8[], $5::float8[], $6::bigint[],
        $7::bigint[], $8::integer[], $9::integer[], $10::text[], $11::text[], $12::text[],
        $13::text[], $14::text[], $15::text[]
    ) AS i(cluster_id, cpu_total_count, cpu_load_1, cpu_load_5, cpu_load_15,
           memory_total_amount, memory_usage, instance_count, member_count, instance_statuses,
           member_statuses, ceph_statuses, storage_pool_usages, server_metrics, ui_url)
),
cluster AS (
    UPDATE remote_clusters c SET last_status_update_at = now()
    FROM input WHERE c.id = input.cluster_id AND c.status = 'ACTIVE'
    RETURNING c.id, c.name, c.status, c.joined_at, c.last_status_update_at
)
INSERT INTO remote_cluster_details AS d (
    cluster_id, cpu_total_count, cpu_load_1, cpu_load_5, cpu_load_15,
    memory_total_amount, memory_usage, instance_count, member_count,
    instance_statuses, member_statuses, ceph_statuses, storage_pool_usages,
    server_metrics, ui_url, name, cluster_status, joined_at, heartbeat_at
)
SELECT i.cluster_id, i.cpu_total_count, i.cpu_load_1, i.cpu_load_5, i.cpu_load_15,
       i.memory_total_amount, i.memory_usage, i.instance_count, i.member_count,
       i.instance_statuses::jsonb, i.member_statuses::jsonb, i.ceph_statuses::jsonb,
       i.storage_pool_usages::jsonb, i.server_metrics::jsonb, i.ui_url,
       c.name, c.status, c.joined_at, c.last_status_update_at
FROM cluster c JOIN input i ON i.cluster_id = c.id
"""  # noqa: S608 - constants joined, no value
    + OVERWRITE_DETAILS
    + "RETURNING cluster_id\n"
)


class _Waiting(NamedTuple):
    cluster_id: int
    heartbeat: Heartbeat
    answer: asyncio.Future[bool]


def _columns(beats: dict[int, Heartbeat]) -> list[list[object]]:
    """STORE_HEARTBEATS' parameters: one list per column, in cluster id order."""
    rows = [
        (
            cluster_id,
            hb.cpu_total_count,
            float(hb.cpu_load_1),
            float(hb.cpu_load_5),
            float(hb.cpu_load_15),
            hb.memory_total_amount,
            hb.memory_usage,
            hb.instance_count,
            hb.member_count,
            json_text(hb.instance_statuses),
            json_text(hb.member_statuses),
            json_text(hb.ceph_statuses),
            json_text(hb.storage_pool_usages),
            json_text(metrics_summary(hb)),
            hb.ui_url,
        )
        for cluster_id, hb in sorted(beats.items())
    ]
    return [list(column) for column in zip(*rows, strict=True)]


async def store_heartbeats(pool: asyncpg.Pool, beats: dict[int, Heartbeat]) -> set[int]:
    """Write each cluster's heartbeat; return the ids whose cluster still exists."""
    if len(beats) == 1:
        ((cluster_id, heartbeat),) = beats.items()
        return {cluster_id} if await store_heartbeat(pool, cluster_id, heartbeat) else set()
    rows = await pool.fetch(STORE_HEARTBEATS, *_columns(beats))
    return {row["cluster_id"] for row in rows}


class HeartbeatWriter:
    """Collects the connector's heartbeats into bursts and writes each burst in one statement."""

    def __init__(
        self, pool: asyncpg.Pool, *, linger: float = LINGER, max_batch: int = MAX_BATCH
    ) -> None:
        self.pool = pool
        self.linger = linger
        self.max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._timer: asyncio.TimerHandle | None = None
        self._last_arrival = float("-inf")
        self._writes: set[asyncio.Task[None]] = set()
        # How many heartbeats could arrive soon, waiting ones included (the server sets it:
        # the connector's open connections that are not tunnels); it may answer None: unknown.
        self.expected: Callable[[], int | None] | None = None
        self.statements = 0  # for tests and metrics: statements written so far

    async def store(self, cluster_id: int, heartbeat: Heartbeat) -> bool:
        """Write the heartbeat (with others that arrive meanwhile); False if the cluster is gone.

        Raises what the database raised, like :func:`~cluster_manager.heartbeats.store_heartbeat`.
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        self._waiting.append(_Waiting(cluster_id, heartbeat, answer))
        now = loop.time()
        quiet = now - self._last_arrival > self.linger
        self._last_arrival = now
        if (
            quiet
            or len(self._waiting) >= self.max_batch
            or self.linger <= 0
            or self._all_expected_are_waiting()
        ):
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.linger, self._flush)
        return await answer

    def _all_expected_are_waiting(self) -> bool:
        expected = self.expected() if self.expected is not None else None
        return expected is not None and len(self._waiting) >= expected

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        burst, self._waiting = self._waiting, []
        if burst:
            task = asyncio.get_running_loop().create_task(self._write(burst))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(self, burst: list[_Waiting]) -> None:
        beats = {w.cluster_id: w.heartbeat for w in burst}  # the newest of a cluster wins
        self.statements += 1
        HEARTBEAT_WRITES.inc()
        try:
            try:
                stored = await store_heartbeats(self.pool, beats)
            except asyncpg.DeadlockDetectedError:
                logger.warning(
                    "a burst of %d heartbeats deadlocked; writing them one by one", len(beats)
                )
                stored = set()
                for cluster_id, heartbeat in sorted(beats.items()):
                    self.statements += 1
                    HEARTBEAT_WRITES.inc()
                    if await store_heartbeat(self.pool, cluster_id, heartbeat):
                        stored.add(cluster_id)
        except Exception as error:  # every waiting handler fails as its own write would
            for waiting in burst:
                if not waiting.answer.done():
                    waiting.answer.set_exception(error)
            return
        except BaseException:  # cancelled (shutdown): so are the handlers' answers
            for waiting in burst:
                waiting.answer.cancel()
            raise
        for waiting in burst:
            if not waiting.answer.done():  # a handler cancelled meanwhile needs no answer
                waiting.answer.set_result(waiting.cluster_id in stored)

    async def close(self) -> None:
        """Write what is waiting and wait for every write in flight."""
        self._flush()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


WRITER = web.AppKey("heartbeat_writer", HeartbeatWriter)


def writer_context():
    """cleanup_ctx: the connector's writer on its pool (after the pool, before it closes)."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        writer = HeartbeatWriter(app[POOL])
        app[WRITER] = writer
        yield
        with contextlib.suppress(Exception):
            await writer.close()

    return run
