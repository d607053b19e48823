"""Sessions ended by signing out, known to every unit at once without a read per request.

Sessions live in sealed cookies (see sessions.py), so a copied cookie would work until it
expires. Signing out therefore writes the session's id to ``revoked_sessions``; a trigger
notifies every unit, whose in-memory set is filled when its listener connects and kept by the
notifications. A request's check is a set lookup. While the listener is down the set may miss a
revocation made elsewhere, so checks then read the table (and fail with the database, 503).
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
ALIVE_INTERVAL = 15.0  # seconds between two checks that the listener's connection is alive


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

    def _on_notify(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        session_id, _, expires_at = payload.rpartition(" ")
        with contextlib.suppress(ValueError):
            self._entries[session_id] = float(expires_at)

    async def _load(self, connection: asyncpg.Connection) -> None:
        for row in await connection.fetch(SELECT_ALL_REVOKED):
            self._entries[row["session_id"]] = float(row["expires_at"])

    async def listen(self, dsn: str, retry_delay: float = 1.0) -> None:
        """Hold a LISTEN connection for ever; prune now and then; reconnect on loss."""
        while True:
            lost = asyncio.Event()
            connection = None
            try:
                connection = await asyncpg.connect(dsn, timeout=10)
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._on_notify)
                await self._load(connection)
                self.listening = True
                pruned = time.monotonic()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=ALIVE_INTERVAL)
                    if lost.is_set():
                        break
                    if time.monotonic() - pruned >= PRUNE_INTERVAL:
                        await connection.execute(DELETE_EXPIRED, timeout=10)
                        self.prune()
                        pruned = time.monotonic()
                    else:
                        await connection.fetchval("SELECT 1", timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                logger.warning("signed-out session listener cannot reach the database")
            finally:
                self.listening = False
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(retry_delay)


REVOKED = web.AppKey("revoked_sessions", RevokedSessions)


def revocation_context(
    dsn: str,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    """cleanup_ctx: the set and its listener task (after the pool)."""

    @contextlib.asynccontextmanager
    async def run(app: web.Application) -> AsyncIterator[None]:
        revoked = RevokedSessions(app[POOL])
        app[REVOKED] = revoked
        task = asyncio.create_task(revoked.listen(dsn))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run
