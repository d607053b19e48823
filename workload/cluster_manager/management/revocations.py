"""Sessions ended by signing out, known to every unit at once without a read per request.

Sessions live in sealed cookies (see sessions.py), so a copied cookie would work until it
expires. Signing out therefore writes the session's id to ``revoked_sessions``; a trigger
notifies every unit, whose in-memory set is filled when the process's listener
(:mod:`cluster_manager.notifications`) connects and kept by the notifications. A request's
check is a set lookup. While the listener is down the set may miss a revocation made
elsewhere, so checks then read the table (and fail with the database, 503).
Entries are pruned once their session would have expired anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from cluster_manager.db import POOL
from cluster_manager.notifications import NOTIFICATIONS

logger = logging.getLogger(__name__)

CHANNEL = "session_revoked"
INSERT_REVOKED = """
INSERT INTO revoked_sessions (session_id, expires_at) VALUES ($1, $2)
ON CONFLICT (session_id) DO NOTHING
"""
SELECT_REVOKED = "SELECT 1 FROM revoked_sessions WHERE session_id = $1 AND expires_at > now()"
SELECT_ALL_REVOKED = """
SELECT session_id, floor(extract(epoch FROM expires_at))::bigint AS expires_at
FROM revoked_sessions WHERE expires_at > now()
"""
DELETE_EXPIRED = "DELETE FROM revoked_sessions WHERE expires_at <= now()"
PRUNE_INTERVAL = 600.0  # seconds between two prunings of expired entries


class RevokedSessions:
    """session id -> expiry (unix seconds) of every signed-out session not yet expired."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._entries: dict[str, float] = {}
        self.listening = False

    def __len__(self) -> int:
        return len(self._entries)

    async def is_revoked(self, session_id: str) -> bool:
        """Whether the session was signed out (from memory while notifications flow)."""
        if self.listening:
            return session_id in self._entries
        return await self._pool.fetchval(SELECT_REVOKED, session_id) is not None

    async def revoke(self, session_id: str, expires_at: float) -> None:
        """End a session on every unit, until ``expires_at`` (when its cookie expires anyway)."""
        await self._pool.execute(
            INSERT_REVOKED, session_id, datetime.fromtimestamp(expires_at, UTC)
        )
        self._entries[session_id] = expires_at

    def prune(self, now: float | None = None) -> None:
        """Forget entries whose sessions have expired."""
        now = time.time() if now is None else now
        for session_id in [s for s, expires_at in self._entries.items() if expires_at <= now]:
            del self._entries[session_id]

    def on_notify(self, payload: str) -> None:
        """``session_id expires_at``: a session signed out on some unit."""
        session_id, _, expires_at = payload.rpartition(" ")
        with contextlib.suppress(ValueError):
            self._entries[session_id] = float(expires_at)

    async def resync(self, connection: asyncpg.Connection) -> None:
        """(Re)connected: reload the signed-out sessions, then answer from memory again."""
        for row in await connection.fetch(SELECT_ALL_REVOKED):
            self._entries[row["session_id"]] = float(row["expires_at"])
        self.listening = True

    def lost(self) -> None:
        """Notifications may be missed from now: read the table until resync."""
        self.listening = False

    async def prune_for_ever(self, interval: float = PRUNE_INTERVAL) -> None:
        """Now and then, forget (here and in the table) the sessions that expired anyway."""
        while True:
            await asyncio.sleep(interval)
            self.prune()
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._pool.execute(DELETE_EXPIRED, timeout=10)


REVOKED = web.AppKey("revoked_sessions", RevokedSessions)


def revocation_context() -> Callable[
    [web.Application], contextlib.AbstractAsyncContextManager[None]
]:
    """cleanup_ctx: the set, subscribed to the process's listener (after the pool and it)."""

    @contextlib.asynccontextmanager
    async def run(app: web.Application) -> AsyncIterator[None]:
        revoked = RevokedSessions(app[POOL])
        app[REVOKED] = revoked
        notifications = app[NOTIFICATIONS]
        subscription = notifications.subscribe(
            CHANNEL, revoked.on_notify, resync=revoked.resync, lost=revoked.lost
        )
        pruning = asyncio.create_task(revoked.prune_for_ever())
        yield
        notifications.unsubscribe(subscription)
        pruning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pruning

    return run
