"""A session's OIDC tokens kept in PostgreSQL when they do not fit in its cookie.

Providers such as Entra ID issue access tokens of 2-3 KB and refresh tokens of 1.5 KB; with
the ID token the sealed session would pass the 3,800 characters a cookie may hold
(sessions.MAX_COOKIE_CHARS). Such a session keeps its access, refresh and ID tokens here,
sealed with AES-256-GCM under a key derived from the shared session key (so any unit opens
them) with the session id inside the sealed payload (a row copied to another session does not
open); the cookie carries the mark ``tokens_stored`` instead. Small tokens (the test provider's,
most providers') stay in the cookie and never touch the database.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime

import asyncpg

from cluster_manager.management.sessions import Sealer, Session

logger = logging.getLogger(__name__)

SEALER_NAME = "mcm-session-tokens"
UPSERT = """
INSERT INTO session_tokens (session_id, sealed, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (session_id) DO UPDATE SET sealed = EXCLUDED.sealed, expires_at = EXCLUDED.expires_at
"""
SELECT = "SELECT sealed FROM session_tokens WHERE session_id = $1 AND expires_at > now()"
DELETE = "DELETE FROM session_tokens WHERE session_id = $1"
DELETE_EXPIRED = "DELETE FROM session_tokens WHERE expires_at <= now()"
MAX_SEALED_CHARS = 64 * 1024  # far above any provider's three tokens
PRUNE_INTERVAL = 600.0  # seconds between two prunings of expired rows (at a save)


class SessionTokens:
    """Save, load and forget the tokens of sessions whose cookie cannot hold them."""

    def __init__(self, pool: asyncpg.Pool, key: bytes) -> None:
        self._pool = pool
        self._sealer = Sealer(key, SEALER_NAME)
        self._pruned_at = time.monotonic()

    async def save(self, session: Session) -> Session:
        """Keep the session's tokens here; return the session as its cookie holds it.

        Absurdly large tokens are not kept: the session is returned as it is, and the cookie
        then drops what it cannot hold (sessions.seal_session).
        """
        if len(session.access_token) + len(session.refresh_token) + len(session.id_token) > (
            MAX_SEALED_CHARS // 2
        ):
            logger.warning("tokens of %s too large to keep: dropped", session.subject[:64])
            return session
        payload = {
            "sid": session.session_id,
            "at": session.access_token,
            "rt": session.refresh_token,
            "idt": session.id_token,
            "exp": session.expires_at,
        }
        expires = datetime.fromtimestamp(session.expires_at, UTC)
        await self._pool.execute(
            UPSERT, session.session_id, self._sealer.seal(payload), expires, timeout=10
        )
        if time.monotonic() - self._pruned_at > PRUNE_INTERVAL:
            self._pruned_at = time.monotonic()
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._pool.execute(DELETE_EXPIRED, timeout=10)
        return session.replace(access_token="", refresh_token="", id_token="", tokens_stored=True)

    async def load(self, session: Session) -> Session | None:
        """The session with its tokens filled in; None if they are gone or do not open."""
        sealed = await self._pool.fetchval(SELECT, session.session_id, timeout=10)
        payload = (
            self._sealer.open(sealed, max_chars=MAX_SEALED_CHARS)
            if isinstance(sealed, str)
            else None
        )
        if payload is None or payload.get("sid") != session.session_id:
            return None
        texts = [payload.get(k, "") for k in ("at", "rt", "idt")]
        if not all(isinstance(t, str) for t in texts):
            return None
        access, refresh, id_token = texts
        return session.replace(access_token=access, refresh_token=refresh, id_token=id_token)

    async def forget(self, session_id: str) -> None:
        """Delete a signed-out session's tokens."""
        await self._pool.execute(DELETE, session_id, timeout=10)
