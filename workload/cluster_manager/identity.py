"""Which cluster a client certificate belongs to: an in-memory cache kept honest by NOTIFY.

Correctness never rests on the cache: the heartbeat's one SQL statement only writes when the
cluster row still exists (see heartbeats.STORE_HEARTBEAT). The cache saves the read. It is
filled with every active cluster when the process's listener (:mod:`.notifications`) connects,
and the ``remote_cluster_changed`` notification (a trigger on remote_clusters) adds each
enrolment and evicts each removal in every process at once; a lost listener connection empties
the cache until it is back.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from cluster_manager.db import POOL
from cluster_manager.notifications import NOTIFICATIONS

logger = logging.getLogger(__name__)

CHANNEL = "remote_cluster_changed"
SELECT_BY_FINGERPRINT = """
SELECT id, name FROM remote_clusters WHERE fingerprint = $1 AND status = 'ACTIVE'
"""
SELECT_ACTIVE = """
SELECT fingerprint, id, name FROM remote_clusters WHERE status = 'ACTIVE' LIMIT $1
"""
MAX_ENTRIES = 200_000


@dataclasses.dataclass(frozen=True)
class ClusterIdentity:
    """The enrolled cluster behind a certificate."""

    id: int
    name: str


class IdentityCache:
    """fingerprint -> cluster, filled at start and by notifications, read through on a miss."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._entries: dict[str, ClusterIdentity] = {}
        self.listening = False

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, fingerprint: str) -> ClusterIdentity | None:
        """What the cache holds for a certificate, without asking the database."""
        return self._entries.get(fingerprint)

    async def lookup(self, fingerprint: str) -> ClusterIdentity | None:
        """Return the cluster for a certificate fingerprint, reading the database on a miss."""
        identity = self._entries.get(fingerprint)
        if identity is not None:
            return identity
        row = await self._pool.fetchrow(SELECT_BY_FINGERPRINT, fingerprint)
        if row is None:
            return None
        identity = ClusterIdentity(id=row["id"], name=row["name"])
        # Only cache while notifications flow: otherwise a removal could go unnoticed.
        if self.listening:
            self._remember(fingerprint, identity)
        return identity

    def evict(self, fingerprint: str) -> None:
        """Forget one certificate."""
        self._entries.pop(fingerprint, None)

    def clear(self) -> None:
        """Forget every certificate."""
        self._entries.clear()

    def _remember(self, fingerprint: str, identity: ClusterIdentity) -> None:
        if len(self._entries) < MAX_ENTRIES:
            self._entries[fingerprint] = identity

    def on_notify(self, payload: str) -> None:
        """``+fingerprint id name`` (enrolled) or ``-fingerprint`` (removed)."""
        if payload.startswith("+"):
            fingerprint, cluster_id, name = payload[1:].split(" ", 2)
            self._remember(fingerprint, ClusterIdentity(id=int(cluster_id), name=name))
        else:
            self.evict(payload.removeprefix("-"))

    async def resync(self, connection: asyncpg.Connection) -> None:
        """(Re)connected: reload every active cluster, then trust the cache again."""
        self.clear()
        for row in await connection.fetch(SELECT_ACTIVE, MAX_ENTRIES):
            self._remember(row["fingerprint"], ClusterIdentity(id=row["id"], name=row["name"]))
        self.listening = True
        logger.info("listening for cluster changes")

    def lost(self) -> None:
        """Notifications may be missed from now: empty the cache, read through until resync."""
        self.listening = False
        self.clear()


IDENTITIES = web.AppKey("identities", IdentityCache)


def identity_context():
    """cleanup_ctx: the cache, subscribed to the process's listener (after the pool and it)."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        cache = IdentityCache(app[POOL])
        app[IDENTITIES] = cache
        notifications = app[NOTIFICATIONS]
        subscription = notifications.subscribe(
            CHANNEL, cache.on_notify, resync=cache.resync, lost=cache.lost
        )
        yield
        notifications.unsubscribe(subscription)

    return run
