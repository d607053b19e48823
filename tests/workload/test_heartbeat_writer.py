"""Heartbeats arriving together are written in one statement, each still answered for itself."""

from __future__ import annotations

import asyncio
import select
import socket

import asyncpg
import msgspec
import pytest
from cluster_manager import clusters, db, listening
from cluster_manager.heartbeat_writer import HeartbeatWriter
from cluster_manager.heartbeats import parse_heartbeat
from cluster_manager.seed import GIB, heartbeat, insert_cluster

DETAILS = """
SELECT c.name, d.memory_usage, d.cpu_load_1, d.instance_count, d.instance_statuses,
       d.heartbeat_at, c.last_status_update_at
FROM remote_cluster_details d JOIN remote_clusters c ON c.id = d.cluster_id
WHERE c.name = $1
"""


@pytest.fixture
async def fleet(pool) -> dict[str, int]:
    """Five enrolled clusters that have not sent a heartbeat yet."""
    return {name: await insert_cluster(pool, name) for name in ("a", "b", "c", "d", "e")}


async def test_a_burst_is_one_statement_and_each_row_gets_its_own_values(pool, fleet):
    writer = HeartbeatWriter(pool, linger=0.05)
    beats = {
        name: heartbeat(memory=(index * GIB, 16 * GIB), instances={"Running": index})
        for index, name in enumerate(fleet, start=1)
    }

    answers = await asyncio.gather(*(writer.store(fleet[n], beats[n]) for n in fleet))

    assert answers == [True] * 5
    assert writer.statements == 2  # the first (nothing came before it) alone, then the rest
    for index, name in enumerate(fleet, start=1):
        row = await pool.fetchrow(DETAILS, name)
        assert row["memory_usage"] == index * GIB
        assert row["instance_count"] == index
        assert row["instance_statuses"] == [{"status": "Running", "count": index}]
        assert row["heartbeat_at"] == row["last_status_update_at"] is not None


async def test_a_removed_cluster_in_a_burst_is_refused_and_the_others_stored(pool, fleet):
    writer = HeartbeatWriter(pool, linger=0.05)
    await clusters.remove_cluster(pool, "c")

    answers = await asyncio.gather(
        *(writer.store(cluster_id, heartbeat()) for cluster_id in fleet.values())
    )

    assert answers == [True, True, False, True, True]
    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_details") == 4
    assert await pool.fetchval(DETAILS, "c") is None


async def test_a_lone_heartbeat_is_written_at_once(pool, fleet):
    writer = HeartbeatWriter(pool, linger=30)  # a linger it would never get through

    async with asyncio.timeout(5):
        assert await writer.store(fleet["a"], heartbeat(memory=(3 * GIB, 16 * GIB)))

    assert (await pool.fetchrow(DETAILS, "a"))["memory_usage"] == 3 * GIB


async def test_a_full_burst_is_written_without_waiting_out_the_linger(pool, fleet):
    writer = HeartbeatWriter(pool, linger=30, max_batch=4)

    async with asyncio.timeout(5):
        answers = await asyncio.gather(
            *(writer.store(cluster_id, heartbeat()) for cluster_id in list(fleet.values())[:5])
        )

    assert answers == [True] * 5
    assert writer.statements == 2  # the lone first, then the next four as soon as they were four


async def test_two_heartbeats_of_one_cluster_in_a_burst_keep_the_newer(pool, fleet):
    writer = HeartbeatWriter(pool, linger=0.05)
    older = heartbeat(memory=(1 * GIB, 16 * GIB))
    newer = heartbeat(memory=(9 * GIB, 16 * GIB))

    answers = await asyncio.gather(
        writer.store(fleet["e"], heartbeat()),  # written alone: the burst comes after
        writer.store(fleet["a"], older),
        writer.store(fleet["a"], newer),
        writer.store(fleet["b"], older),
    )

    assert answers == [True, True, True, True]
    assert (await pool.fetchrow(DETAILS, "a"))["memory_usage"] == 9 * GIB
    assert (await pool.fetchrow(DETAILS, "b"))["memory_usage"] == 1 * GIB


async def test_a_failed_write_fails_every_heartbeat_waiting_on_it(pool, fleet, database_dsn):
    from cluster_manager import db

    broken = await db.create_pool(database_dsn, max_size=2)
    writer = HeartbeatWriter(broken, linger=0.05)
    await broken.execute("ALTER TABLE remote_cluster_details ADD CHECK (memory_usage < 0)")

    answers = await asyncio.gather(
        *(writer.store(cluster_id, heartbeat()) for cluster_id in fleet.values()),
        return_exceptions=True,
    )
    await broken.close()

    assert all(isinstance(answer, Exception) for answer in answers), answers
    assert "check constraint" in str(answers[-1])
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM remote_cluster_details WHERE heartbeat_at IS NOT NULL"
        )
        == 0
    )


async def test_close_writes_what_is_waiting(pool, fleet):
    writer = HeartbeatWriter(pool, linger=30)
    first = asyncio.ensure_future(writer.store(fleet["a"], heartbeat()))
    await first  # alone: written at once
    waiting = [asyncio.ensure_future(writer.store(fleet[n], heartbeat())) for n in ("b", "c")]
    await asyncio.sleep(0)

    await writer.close()

    assert [w.result() for w in waiting] == [True, True]


async def test_lists_the_go_client_sends_as_null_are_stored_empty_in_a_burst(pool, fleet):
    """The MicroCloud client sends a nil slice as null (PROTOCOL.md, "lists may be null")."""
    body = msgspec.json.encode(heartbeat())
    document = msgspec.json.decode(body)
    for key in ("instance_statuses", "member_statuses", "ceph_statuses", "storage_pool_usages"):
        document[key] = None
    beat = parse_heartbeat(msgspec.json.encode(document))
    writer = HeartbeatWriter(pool, linger=0.05)

    await asyncio.gather(*(writer.store(cluster_id, beat) for cluster_id in fleet.values()))

    for name in fleet:
        row = await pool.fetchrow(
            "SELECT instance_statuses, ceph_statuses, storage_pool_usages, instance_count"
            " FROM remote_cluster_details d JOIN remote_clusters c ON c.id = d.cluster_id"
            " WHERE c.name = $1",
            name,
        )
        assert dict(row) == {
            "instance_statuses": [],
            "ceph_statuses": [],
            "storage_pool_usages": [],
            "instance_count": 0,
        }


LOCK_CLUSTER = "UPDATE remote_clusters SET description = $2 WHERE id = $1"


async def test_a_write_postgres_fails_to_break_a_deadlock_is_run_again(pool, fleet, database_dsn):
    """A real deadlock: PostgreSQL fails the transaction that waited first (ours), once."""
    a, b = fleet["a"], fleet["b"]
    other = await asyncpg.connect(database_dsn)
    holding = other.transaction()
    await holding.start()
    await other.execute(LOCK_CLUSTER, a, "other")  # the other side holds a
    attempts = 0
    other_wants_b: asyncio.Task[str] | None = None

    async def write() -> str:
        nonlocal attempts, other_wants_b
        attempts += 1
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(LOCK_CLUSTER, b, "ours")  # we hold b ...
            if other_wants_b is None:
                loop = asyncio.get_running_loop()
                # ... and wait for a; a moment later the other side asks for b: a cycle.
                loop.call_later(0.2, start_other)
            await connection.execute(LOCK_CLUSTER, a, "ours")
        return "written"

    def start_other() -> None:
        nonlocal other_wants_b
        other_wants_b = asyncio.ensure_future(other.execute(LOCK_CLUSTER, b, "other"))
        other_wants_b.add_done_callback(lambda _: asyncio.ensure_future(holding.commit()))

    try:
        assert await db.retry_on_deadlock(write) == "written"
    finally:
        await other.close()

    assert attempts == 2
    rows = await pool.fetch("SELECT description FROM remote_clusters WHERE id = ANY($1)", [a, b])
    assert [r["description"] for r in rows] == ["ours", "ours"]


async def test_a_deadlock_on_every_attempt_is_reported(pool):
    attempts = 0

    async def write() -> None:
        nonlocal attempts
        attempts += 1
        # What asyncpg raises for SQLSTATE 40P01.
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    with pytest.raises(asyncpg.DeadlockDetectedError):
        await db.retry_on_deadlock(write)
    assert attempts == db.DEADLOCK_ATTEMPTS


async def test_without_a_count_of_expected_heartbeats_a_burst_waits_its_linger(pool, fleet):
    writer = HeartbeatWriter(pool, linger=30)
    writer.expected = lambda: None  # too many connections open to count them cheaply
    await writer.store(fleet["a"], heartbeat())  # alone: at once

    waiting = [asyncio.ensure_future(writer.store(fleet[n], heartbeat())) for n in ("b", "c")]
    await asyncio.sleep(0.2)

    assert not any(w.done() for w in waiting)
    await writer.close()
    assert [w.result() for w in waiting] == [True, True]


def test_open_connections_are_counted_only_while_few():
    server = listening.listening_socket("127.0.0.1", 0, 16, "test", 100)
    address = server.getsockname()
    clients = [socket.create_connection(address) for _ in range(3)]
    accepted = []
    try:
        while len(accepted) < 3:
            select.select([server], [], [], 5)
            accepted.append(server.accept()[0])

        assert server.open_connections(at_most=8) == 3
        accepted[0].close()  # as asyncio closes a finished connection
        assert server.open_connections(at_most=8) == 2
        assert server.open_connections(at_most=1) is None  # not walked: too many may be open
    finally:
        for sock in (*clients, *accepted, server):
            sock.close()
