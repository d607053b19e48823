"""The tunnels live on this unit, kept to one per cluster across every unit.

A new tunnel claims the cluster's row in remote_cluster_tunnels; the row's trigger notifies
every unit, and a unit holding an older tunnel of that cluster closes it. The identity
cache's ``remote_cluster_changed`` notification (see :mod:`cluster_manager.identity`) says a
certificate was removed: its tunnel closes at once wherever it lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aiohttp import WSCloseCode

from cluster_manager.identity import CHANNEL as CLUSTER_CHANNEL
from cluster_manager.settings import Settings
from cluster_manager.tunnel import store
from cluster_manager.tunnel.live import LiveTunnel

logger = logging.getLogger(__name__)


class TunnelHub:
    """This unit's live tunnels by cluster id, and the listener that closes replaced ones."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.unit_address = settings.internal_address
        self.tunnels: dict[int, LiveTunnel] = {}
        self.pool: asyncpg.Pool | None = None
        self.listening = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    async def start(self, pool: asyncpg.Pool) -> None:
        """Forget the tunnels an earlier run of this unit held, and start listening."""
        self.pool = pool
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await store.release_unit(pool, self.unit_address)
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        """Close every tunnel and stop listening."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.close_all()

    async def close_all(self) -> None:
        """Close every tunnel of this unit (the server is stopping)."""
        await asyncio.gather(
            *(
                t.close(WSCloseCode.GOING_AWAY, "server shutting down")
                for t in self.tunnels.values()
            )
        )

    def local(self, cluster_id: int) -> LiveTunnel | None:
        """The cluster's live tunnel if it is on this unit."""
        tunnel = self.tunnels.get(cluster_id)
        return None if tunnel is None or tunnel.closed else tunnel

    async def attach(self, tunnel: LiveTunnel) -> bool:
        """Make ``tunnel`` the cluster's one, closing an older one here; False if removed."""
        assert self.pool is not None
        older = self.tunnels.get(tunnel.cluster_id)
        self.tunnels[tunnel.cluster_id] = tunnel  # usable from this unit at once
        if older is not None and older is not tunnel:
            await older.close(WSCloseCode.GOING_AWAY, "replaced by a new tunnel")
        if not await store.claim(self.pool, tunnel.cluster_id, self.unit_address, tunnel.session):
            if self.tunnels.get(tunnel.cluster_id) is tunnel:
                del self.tunnels[tunnel.cluster_id]
            return False
        tunnel.claimed = True
        logger.info("tunnel of cluster %r connected", tunnel.cluster_name)
        return True

    async def detach(self, tunnel: LiveTunnel) -> None:
        """Forget an ended tunnel (unless a newer one replaced it)."""
        if self.tunnels.get(tunnel.cluster_id) is tunnel:
            del self.tunnels[tunnel.cluster_id]
        if self.pool is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await store.release(self.pool, tunnel.cluster_id, tunnel.session)
        logger.info("tunnel of cluster %r disconnected", tunnel.cluster_name)

    def _close_soon(self, tunnel: LiveTunnel, reason: str) -> None:
        asyncio.get_running_loop().create_task(tunnel.close(WSCloseCode.GOING_AWAY, reason))

    def _on_tunnel(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        cluster_id, _, session = payload.partition(" ")
        tunnel = self.tunnels.get(int(cluster_id))
        if tunnel is not None and tunnel.session != session:
            self._close_soon(tunnel, "replaced by a new tunnel")

    def _on_cluster(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith("+"):
            return
        fingerprint = payload.removeprefix("-")
        for tunnel in list(self.tunnels.values()):
            if tunnel.fingerprint == fingerprint:
                self._close_soon(tunnel, "the cluster was removed")

    async def _sweep(self, connection: asyncpg.Connection) -> None:
        """Close the tunnels replaced or removed while nobody listened."""
        claimed = {i: t for i, t in self.tunnels.items() if t.claimed}  # rows committed before
        current = {
            row["cluster_id"]: row["session"]
            for row in await connection.fetch(store.SELECT_SESSIONS, list(claimed))
        }
        for cluster_id, tunnel in claimed.items():
            if current.get(cluster_id) != tunnel.session:
                self._close_soon(tunnel, "replaced or removed while the unit was not listening")

    async def _listen(self, retry_delay: float = 1.0) -> None:
        dsn = self.settings.database_dsn
        while True:
            lost = asyncio.Event()
            connection = None
            try:
                connection = await asyncpg.connect(dsn, timeout=10)
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(store.CHANNEL, self._on_tunnel)
                await connection.add_listener(CLUSTER_CHANNEL, self._on_cluster)
                await self._sweep(connection)
                self.listening.set()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=15)
                    if not lost.is_set():
                        await connection.fetchval("SELECT 1", timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                logger.warning("tunnel listener cannot reach the database")
            finally:
                self.listening.clear()
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(retry_delay)
