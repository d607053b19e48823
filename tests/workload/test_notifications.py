"""The process's one LISTEN connection: subscribers, loss, reconnection and resynchronisation.

Real PostgreSQL: the listener's backend is ended with ``pg_terminate_backend`` as an
administrator (or a failover) would, and notifications are sent with ``pg_notify``.
"""

from __future__ import annotations

import asyncio

import asyncpg
from cluster_manager import clusters, tokens
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.identity import IDENTITIES
from cluster_manager.management.revocations import REVOKED
from cluster_manager.notifications import APPLICATION_NAME, NOTIFICATIONS, Notifications
from cluster_manager.tunnel import TUNNEL_HUB
from e2e_fixtures import wait_until

LISTENERS = """
SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1
"""


async def listener_pids(pool: asyncpg.Pool) -> list[int]:
    return [row["pid"] for row in await pool.fetch(LISTENERS, APPLICATION_NAME)]


async def terminate_listeners(pool: asyncpg.Pool) -> int:
    pids = await listener_pids(pool)
    for pid in pids:
        await pool.execute("SELECT pg_terminate_backend($1)", pid)
    return len(pids)


async def _true(value: bool) -> bool:
    return value


async def test_listener_resubscribes_and_resynchronises_after_its_connection_is_killed(
    database_dsn, pool
):
    listener = Notifications(database_dsn, first_delay=0.05)
    received: list[str] = []
    resyncs: list[int] = []
    losses: list[float] = []

    async def resync(connection: asyncpg.Connection) -> None:
        resyncs.append(await connection.fetchval("SELECT pg_backend_pid()"))

    listener.subscribe(
        "test_channel", received.append, resync=resync, lost=lambda: losses.append(1)
    )
    async with listener.running():
        await wait_until(lambda: _true(listener.connected.is_set()))
        await pool.execute("SELECT pg_notify('test_channel', 'before')")
        await wait_until(lambda: _true(received == ["before"]))
        first_pid = await listener_pids(pool)

        assert await terminate_listeners(pool) == 1
        await wait_until(lambda: _true(listener.connections == 2), within=10)
        await pool.execute("SELECT pg_notify('test_channel', 'after')")
        await wait_until(lambda: _true(received == ["before", "after"]))
        second_pid = await listener_pids(pool)
        told = list(losses)

    assert told == [1]  # told once, when the connection was killed (and again on stop)
    assert resyncs == [*first_pid, *second_pid]  # resynchronised on each connection, on it
    assert first_pid != second_pid

    async def gone() -> bool:  # the backend ends a moment after the connection is dropped
        return await listener_pids(pool) == []

    await wait_until(gone)  # the last user stopped it


async def test_one_subscribers_failure_does_not_silence_the_others(database_dsn, pool):
    listener = Notifications(database_dsn)
    received: list[str] = []

    def broken(_payload: str) -> None:
        raise RuntimeError("subscriber bug")

    listener.subscribe("test_channel", broken)
    listener.subscribe("test_channel", received.append)
    async with listener.running():
        await wait_until(lambda: _true(listener.connected.is_set()))
        late: list[str] = []
        listener.subscribe("late_channel", late.append)  # while connected: LISTENed soon

        async def late_heard() -> bool:
            await pool.execute("SELECT pg_notify('late_channel', 'x')")
            await asyncio.sleep(0.05)
            return bool(late)

        await wait_until(late_heard)
        await pool.execute("SELECT pg_notify('test_channel', 'one')")
        await wait_until(lambda: _true(received == ["one"]))

    assert set(late) == {"x"}
    assert listener.connections == 1


async def test_a_server_process_holds_one_listen_connection(start_server, pool):
    servers = await start_server()
    apps = [r.app for r in servers.runners if NOTIFICATIONS in r.app]
    await wait_until(lambda: _true(apps[0][NOTIFICATIONS].connected.is_set()))

    assert len(apps) == 2  # management and connector share it
    assert apps[0][NOTIFICATIONS] is apps[1][NOTIFICATIONS]
    assert len(await listener_pids(pool)) == 1


async def test_server_catches_up_on_what_it_missed_while_its_listener_was_down(
    start_server, open_tunnel, pool
):
    servers = await start_server()
    apps = {key: r.app for r in servers.runners for key in (IDENTITIES, REVOKED) if key in r.app}
    cache, revoked = apps[IDENTITIES][IDENTITIES], apps[REVOKED][REVOKED]
    hub = apps[IDENTITIES][TUNNEL_HUB]
    listener = apps[IDENTITIES][NOTIFICATIONS]
    token, _ = await tokens.create_token(pool, servers.settings, "edge-1")
    cluster = SimulatedCluster("edge-1")
    await cluster.join(token.encode())
    tunnel = await open_tunnel(cluster)
    await wait_until(lambda: _true(cache.cached(cluster.fingerprint) is not None))
    await wait_until(lambda: _true(any(t.claimed for t in hub.tunnels.values())))
    listener.first_delay = 3.0  # the reconnection waits 1.5 to 3 s: time to miss things

    assert await terminate_listeners(pool) == 1
    await wait_until(lambda: _true(not listener.connected.is_set()))
    assert (cache.listening, revoked.listening, hub.listening.is_set()) == (False, False, False)
    await clusters.remove_cluster(pool, "edge-1")  # its NOTIFY reaches nobody here
    await pool.execute(
        "INSERT INTO revoked_sessions (session_id, expires_at) VALUES ('gone', now() + '1h')"
    )
    assert listener.connections == 1  # still down: both happened while nobody listened

    await wait_until(lambda: _true(listener.connected.is_set()), within=10)
    await wait_until(lambda: _true(tunnel.ws.closed), within=5)
    assert (cache.listening, revoked.listening, hub.listening.is_set()) == (True, True, True)
    assert cache.cached(cluster.fingerprint) is None
    assert len(revoked) == 1
    assert await revoked.is_revoked("gone")  # from memory, the listener being back
    assert (await cluster.heartbeat(check=False))[0] == 403
    assert len(await listener_pids(pool)) == 1


async def test_a_failing_resync_makes_the_listener_start_again(database_dsn, pool):
    listener = Notifications(database_dsn, first_delay=0.05)
    attempts: list[int] = []
    received: list[str] = []

    async def resync(_connection: asyncpg.Connection) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("subscriber bug on the first connection")

    listener.subscribe("test_channel", received.append, resync=resync)
    async with listener.running():
        await wait_until(lambda: _true(listener.connected.is_set()))
        await pool.execute("SELECT pg_notify('test_channel', 'heard')")
        await wait_until(lambda: _true(received == ["heard"]))

    assert len(attempts) == 2
    assert listener.connections == 1  # the first connection never counted as established
