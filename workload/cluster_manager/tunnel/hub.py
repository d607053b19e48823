"""The tunnels live on this unit, kept to one per cluster across every unit.

A new tunnel claims the cluster's row in remote_cluster_tunnels; the row's trigger notifies
every unit. The row decides which tunnel is the cluster's one: a unit told of another session
than its tunnel's reads the row, and closes its tunnel only if the row names another session.
(A notification is no order: the one of an older claim, even of this unit, may arrive after a
newer tunnel was attached, and must not close it.) Claims of one cluster on this unit are made
one at a time, in the order the tunnels arrived. The identity cache's ``remote_cluster_changed``
notification (see :mod:`cluster_manager.identity`) says a certificate was removed: its tunnel
closes at once wherever it lives. Both come through the process's one listener
(:mod:`cluster_manager.notifications`), which resynchronises the hub after a reconnection.

Each unit refreshes its ``alive_at`` (remote_cluster_tunnel_units) every
``tunnel_liveness_interval``; the tunnels of a unit not refreshed for
:data:`store.EXPIRY_INTERVALS` intervals (it died and did not restart) count as not connected,
and any unit deletes them. A tunnel whose row is gone or names another session is closed by the
same pass (the cluster dials again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aiohttp import WSCloseCode

from cluster_manager.identity import CHANNEL as CLUSTER_CHANNEL
from cluster_manager.notifications import Notifications, Subscription
from cluster_manager.settings import Settings
from cluster_manager.tunnel import store
from cluster_manager.tunnel.live import LiveTunnel

logger = logging.getLogger(__name__)
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class TunnelHub:
    """This unit's live tunnels by cluster id, closing the ones replaced elsewhere."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.unit_address = settings.internal_address
        self.tunnels: dict[int, LiveTunnel] = {}
        self.pool: asyncpg.Pool | None = None
        self.listening = asyncio.Event()
        self._notifications: Notifications | None = None
        self._subscriptions: list[Subscription] = []
        self._claiming: dict[int, tuple[asyncio.Lock, int]] = {}  # lock, attaches using it
        self._tasks: set[asyncio.Task[None]] = set()
        self._liveness: asyncio.Task[None] | None = None

    async def start(self, pool: asyncpg.Pool, notifications: Notifications) -> None:
        """Forget the tunnels an earlier run of this unit held, and subscribe."""
        self.pool = pool
        with contextlib.suppress(*_DB_ERRORS):
            await store.release_unit(pool, self.unit_address)
        self._notifications = notifications
        self._subscriptions = [
            notifications.subscribe(
                store.CHANNEL, self._on_tunnel, resync=self._resync, lost=self.listening.clear
            ),
            notifications.subscribe(CLUSTER_CHANNEL, self._on_cluster),
        ]
        self._liveness = asyncio.create_task(self._keep_alive())

    async def stop(self) -> None:
        """Close every tunnel and unsubscribe."""
        if self._notifications is not None:
            for subscription in self._subscriptions:
                self._notifications.unsubscribe(subscription)
        tasks = [*self._tasks, *([self._liveness] if self._liveness else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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

    def open_count(self) -> int:
        """Tunnels open on this process."""
        return sum(1 for t in self.tunnels.values() if not t.closed)

    async def attach(self, tunnel: LiveTunnel) -> bool:
        """Make ``tunnel`` the cluster's one, closing an older one here; False if removed."""
        assert self.pool is not None
        cluster_id = tunnel.cluster_id
        older = self.tunnels.get(cluster_id)
        self.tunnels[cluster_id] = tunnel  # usable from this unit at once
        if older is not None and older is not tunnel:
            await older.close(WSCloseCode.GOING_AWAY, "replaced by a new tunnel")
        lock, users = self._claiming.get(cluster_id, (asyncio.Lock(), 0))
        self._claiming[cluster_id] = (lock, users + 1)
        try:
            async with lock:  # claims commit in arrival order: the newest tunnel's row wins
                if tunnel.closed:  # replaced (or gone) while it waited: nothing to claim
                    return True
                if not await store.claim(self.pool, cluster_id, self.unit_address, tunnel.session):
                    if self.tunnels.get(cluster_id) is tunnel:
                        del self.tunnels[cluster_id]
                    return False
                tunnel.claimed = True
        finally:
            lock, users = self._claiming[cluster_id]
            if users == 1:
                del self._claiming[cluster_id]
            else:
                self._claiming[cluster_id] = (lock, users - 1)
        if tunnel.recheck:  # another claim was announced while this one was in flight
            self._spawn(self._check([tunnel]))
        logger.info("tunnel of cluster %r connected", tunnel.cluster_name)
        return True

    async def detach(self, tunnel: LiveTunnel) -> None:
        """Forget an ended tunnel (unless a newer one replaced it)."""
        if self.tunnels.get(tunnel.cluster_id) is tunnel:
            del self.tunnels[tunnel.cluster_id]
        if self.pool is not None:
            with contextlib.suppress(*_DB_ERRORS):
                await store.release(self.pool, tunnel.cluster_id, tunnel.session)
        logger.info("tunnel of cluster %r disconnected", tunnel.cluster_name)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close_soon(self, tunnel: LiveTunnel, reason: str) -> None:
        self._spawn(tunnel.close(WSCloseCode.GOING_AWAY, reason))

    def _on_tunnel(self, payload: str) -> None:
        cluster_id, _, session = payload.partition(" ")
        tunnel = self.tunnels.get(int(cluster_id))
        if tunnel is None or tunnel.session == session or tunnel.closed:
            return
        if tunnel.claimed:
            self._spawn(self._check([tunnel]))
        else:
            tunnel.recheck = True  # decided once its own claim is in

    def _on_cluster(self, payload: str) -> None:
        if payload.startswith("+"):
            return
        fingerprint = payload.removeprefix("-")
        for tunnel in list(self.tunnels.values()):
            if tunnel.fingerprint == fingerprint:
                self._close_soon(tunnel, "the cluster was removed")

    async def _check(self, tunnels: list[LiveTunnel], reason: str = "") -> None:
        """Close the claimed tunnels whose row is gone or names another session."""
        if self.pool is None:
            return
        try:
            current = await store.sessions(self.pool, [t.cluster_id for t in tunnels])
        except _DB_ERRORS:
            return  # kept for now: the listener's resync or the liveness pass decides later
        self._close_replaced(tunnels, current, reason)

    def _close_replaced(
        self, tunnels: list[LiveTunnel], current: dict[int, str], reason: str = ""
    ) -> None:
        for tunnel in tunnels:
            replaced = current.get(tunnel.cluster_id) != tunnel.session
            if tunnel.claimed and not tunnel.closed and replaced:
                self._close_soon(tunnel, reason or "replaced by a new tunnel")

    async def _resync(self, connection: asyncpg.Connection) -> None:
        """(Re)connected: close the tunnels replaced or removed while nobody listened."""
        claimed = [t for t in self.tunnels.values() if t.claimed]  # rows committed before
        rows = await connection.fetch(store.SELECT_SESSIONS, [t.cluster_id for t in claimed])
        current = {row["cluster_id"]: row["session"] for row in rows}
        self._close_replaced(
            claimed, current, "replaced or removed while the unit was not listening"
        )
        self.listening.set()

    async def _keep_alive(self) -> None:
        """Refresh this unit, delete dead units' rows, close tunnels whose row is gone."""
        interval = self.settings.tunnel_liveness_interval
        while True:
            await asyncio.sleep(interval)
            await self.refresh()

    async def refresh(self) -> None:
        """One liveness pass (see the module's description)."""
        if self.pool is None:
            return
        claimed = [t for t in self.tunnels.values() if t.claimed and not t.closed]
        try:
            current = await store.refresh(self.pool, self.unit_address)
            await store.expire(self.pool, self.settings.tunnel_liveness_interval)
        except _DB_ERRORS:
            logger.warning("cannot refresh this unit's tunnels in the database")
            return
        self._close_replaced(claimed, current, "its record expired or was replaced")
