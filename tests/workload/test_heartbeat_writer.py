"""Heartbeats arriving together are written in one statement, each caller told its own result."""

from __future__ import annotations

import asyncio

import asyncpg
from cluster_manager import clusters
from cluster_manager.connector.writer import HeartbeatWriter
from cluster_manager.heartbeats import store_heartbeats
from cluster_manager.seed import GIB, heartbeat, insert_cluster
from msgspec import to_builtins


async def details(pool: asyncpg.Pool, name: str) -> dict:
    return to_builtins(await clusters.get_cluster(pool, name))


async def test_heartbeats_arriving_together_share_one_statement(pool):
    ids = [await insert_cluster(pool, f"batch-{i}", heartbeat()) for i in range(20)]
    writer = HeartbeatWriter(pool)

    results = await asyncio.gather(
        *(writer.store(cluster_id, heartbeat(cpu_total_count=100 + i)) for i, cluster_id in
          enumerate(ids))
    )  # fmt: skip

    assert results == [True] * 20
    assert (writer.statements, writer.written) == (1, 20)
    for i in range(20):
        assert (await details(pool, f"batch-{i}"))["cpu_total_count"] == 100 + i


async def test_a_heartbeat_arriving_during_a_write_goes_in_the_next_statement(pool):
    ids = [await insert_cluster(pool, f"late-{i}", heartbeat()) for i in range(5)]
    writer = HeartbeatWriter(pool)

    first = asyncio.create_task(writer.store(ids[0], heartbeat()))
    await asyncio.sleep(0)  # the write of the first is under way
    rest = [asyncio.create_task(writer.store(i, heartbeat())) for i in ids[1:]]

    assert await first is True
    assert await asyncio.gather(*rest) == [True] * 4
    assert (writer.statements, writer.written) == (2, 5)


async def test_a_removed_cluster_in_a_batch_is_refused_and_the_others_are_written(pool):
    ids = [await insert_cluster(pool, f"mixed-{i}", heartbeat()) for i in range(4)]
    await pool.execute("DELETE FROM remote_clusters WHERE id = $1", ids[2])
    writer = HeartbeatWriter(pool)

    results = await asyncio.gather(
        *(writer.store(cluster_id, heartbeat(memory=(i * GIB, 16 * GIB))) for i, cluster_id in
          enumerate(ids))
    )  # fmt: skip

    assert results == [True, True, False, True]
    assert (writer.statements, writer.written) == (1, 3)
    assert (await details(pool, "mixed-3"))["memory_usage"] == 3 * GIB
    assert await pool.fetchval(
        "SELECT count(*) FROM remote_cluster_details WHERE cluster_id = $1", ids[2]
    ) == 0  # fmt: skip


async def test_two_heartbeats_of_one_cluster_in_a_batch_write_the_later(pool):
    first = await insert_cluster(pool, "twice", heartbeat())
    other = await insert_cluster(pool, "other", heartbeat())
    writer = HeartbeatWriter(pool)

    results = await asyncio.gather(
        writer.store(other, heartbeat()),
        writer.store(first, heartbeat(cpu_total_count=1)),
        writer.store(first, heartbeat(cpu_total_count=2)),
    )

    assert results == [True, True, True]
    assert (await details(pool, "twice"))["cpu_total_count"] == 2
    assert (writer.statements, writer.written) == (1, 2)  # "twice" once, the later heartbeat


async def test_a_failed_write_fails_only_its_own_heartbeats(pool):
    good = await insert_cluster(pool, "good", heartbeat())
    writer = HeartbeatWriter(pool)
    bad = heartbeat()
    bad.cpu_total_count = 2**40  # out of PostgreSQL's integer range: the statement fails
    other = await insert_cluster(pool, "other", heartbeat())

    results = await asyncio.gather(
        writer.store(good, heartbeat()),
        writer.store(other, bad),
        return_exceptions=True,
    )
    after = await writer.store(good, heartbeat(cpu_total_count=7))

    assert results[0] is True
    assert isinstance(results[1], asyncpg.DataError | OverflowError)
    assert after is True
    assert (await details(pool, "good"))["cpu_total_count"] == 7


async def test_store_heartbeats_writes_several_clusters_in_one_statement(pool):
    ids = [await insert_cluster(pool, f"direct-{i}", heartbeat()) for i in range(3)]
    await pool.execute("DELETE FROM remote_clusters WHERE id = $1", ids[0])

    written = await store_heartbeats(
        pool, {cluster_id: heartbeat(cpu_load_1=1.5) for cluster_id in ids}
    )

    assert written == set(ids[1:])
    assert float((await details(pool, "direct-2"))["cpu_load_1"]) == 1.5
