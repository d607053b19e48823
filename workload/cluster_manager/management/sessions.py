"""Sealed cookies: sessions (and the short-lived sign-in state) kept by the browser.

A session is encrypted and authenticated with AES-256-GCM under a key derived from the
``session_key_file`` every unit shares, so any unit behind the load balancer can read it. The
plaintext carries its own expiry; the cookie name is bound in as associated data, so a value
sealed for one cookie cannot be replayed as another. Each session has a random id: signing out
records it as revoked on every unit (see revocations.py), so a copy of the cookie stops working.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import os
import time
import zlib
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

logger = logging.getLogger(__name__)

SESSION_COOKIE = "__Host-mcm_session"
LOGIN_COOKIE = "__Host-mcm_login"
CSRF_COOKIE = "__Host-mcm_csrf"

MAX_COOKIE_CHARS = (
    3800  # browsers keep at least 4096 bytes per cookie, name and attributes included
)
MAX_GROUPS = 64
MAX_GROUP_CHARS = 256
_VERSION = b"\x01"
_NONCE_BYTES = 12


class SessionKeyError(ValueError):
    """The session key file is missing or too short."""


def load_key(path: str) -> bytes:
    """Read the shared session key; without a file, a random key good for this process only."""
    if not path:
        logger.warning(
            "session_key_file is not set: sessions last until restart and work on this unit only"
        )
        return os.urandom(32)
    try:
        key = Path(path).read_bytes()
    except OSError as error:
        raise SessionKeyError(f"session_key_file {path}: {error.strerror}") from None
    if len(key.strip()) < 32:
        raise SessionKeyError(f"session_key_file {path}: needs at least 32 bytes of key")
    return key.strip()


class Sealer:
    """Seal and open JSON objects for one cookie name."""

    def __init__(self, key: bytes, cookie_name: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"mcm-cookie:" + cookie_name.encode(),
        ).derive(key)
        self._aead = AESGCM(derived)
        self._aad = cookie_name.encode()

    def seal(self, payload: dict[str, Any]) -> str:
        """Return the cookie value for ``payload`` (which must hold an ``exp`` timestamp)."""
        plaintext = zlib.compress(json.dumps(payload, separators=(",", ":")).encode())
        nonce = os.urandom(_NONCE_BYTES)
        sealed = _VERSION + nonce + self._aead.encrypt(nonce, plaintext, self._aad)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open(
        self, value: str | None, now: float | None = None, max_chars: int = MAX_COOKIE_CHARS
    ) -> dict[str, Any] | None:
        """Return the payload of a cookie value, or None if forged, damaged or expired."""
        if not value or len(value) > max_chars:
            return None
        try:
            sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
            return None
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            plaintext = self._aead.decrypt(nonce, ciphertext, self._aad)
            decompressor = zlib.decompressobj()
            data = decompressor.decompress(plaintext, 64 * 1024)
            payload = json.loads(data)
        except (InvalidTag, zlib.error, ValueError):
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int | float):
            return None
        if payload["exp"] <= (time.time() if now is None else now):
            return None
        return payload


@dataclasses.dataclass(frozen=True)
class Session:
    """What the session cookie holds about a signed-in person."""

    subject: str
    name: str
    email: str
    groups: tuple[str, ...]
    csrf: str
    expires_at: int  # the session ends here at the latest (session_lifetime after sign-in)
    access_expires_at: int  # when the access token needs a refresh
    session_id: str  # random, kept across refreshes; what signing out revokes
    refresh_token: str = dataclasses.field(default="", repr=False)
    # the id_token_hint for the identity provider's end-session endpoint
    id_token: str = dataclasses.field(default="", repr=False)
    # The user's current OIDC access token: sent as a bearer token to clusters' LXD through
    # their tunnels (remote_lxd.py), never to the browser (the cookie is sealed) nor logged.
    access_token: str = dataclasses.field(default="", repr=False)
    tokens_stored: bool = False  # the three tokens are in PostgreSQL (session_tokens.py)

    def to_payload(self) -> dict[str, Any]:
        """The JSON object sealed into the cookie (short keys keep the cookie small)."""
        return {
            "sub": self.subject,
            "name": self.name,
            "email": self.email,
            "grp": list(self.groups),
            "csrf": self.csrf,
            "exp": self.expires_at,
            "aexp": self.access_expires_at,
            "sid": self.session_id,
            "rt": self.refresh_token,
            "idt": self.id_token,
            "at": self.access_token,
            **({"ts": 1} if self.tokens_stored else {}),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Session | None:
        """Rebuild a session from an opened cookie; None if a field has the wrong type."""
        try:
            session = cls(
                subject=payload["sub"],
                name=payload["name"],
                email=payload["email"],
                groups=tuple(payload["grp"]),
                csrf=payload["csrf"],
                expires_at=int(payload["exp"]),
                access_expires_at=int(payload["aexp"]),
                session_id=payload["sid"],
                refresh_token=payload.get("rt", ""),
                id_token=payload.get("idt", ""),
                access_token=payload.get("at", ""),
                tokens_stored=payload.get("ts") == 1,
            )
        except (KeyError, TypeError, ValueError):
            return None
        texts = (
            session.subject,
            session.name,
            session.email,
            session.csrf,
            session.session_id,
            session.refresh_token,
            session.id_token,
            session.access_token,
            *session.groups,
        )
        if not all(isinstance(text, str) for text in texts):
            return None
        if not session.csrf or not session.session_id:
            return None
        return session

    def replace(self, **changes: Any) -> Session:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def bounded_groups(groups: Any, keep: str | tuple[str, ...]) -> tuple[str, ...]:
    """Normalise a groups claim (list or single string) to a bounded tuple.

    The groups ``keep`` (those giving a role) are always kept when present, however long the
    list.
    """
    keeps = (keep,) if isinstance(keep, str) else keep
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list | tuple):
        return ()
    names = [g for g in groups if isinstance(g, str) and 0 < len(g) <= MAX_GROUP_CHARS]
    chosen = [k for k in keeps if k in names]
    chosen += [g for g in names if g not in keeps][: MAX_GROUPS - len(chosen)]
    return tuple(chosen)


def seal_whole(sealer: Sealer, session: Session) -> str | None:
    """The cookie value of the whole session, or None if it does not fit in a browser."""
    value = sealer.seal(session.to_payload())
    return value if len(value) <= MAX_COOKIE_CHARS else None


def seal_session(
    sealer: Sealer, session: Session, keep_group: str | tuple[str, ...]
) -> tuple[Session, str]:
    """Seal a session, dropping what can be spared until the cookie fits in a browser.

    First the id_token (logout then goes without id_token_hint), then groups other than those
    giving a role, then the refresh token (the session then ends with the access token), and
    last the access token itself (calls to clusters' LXD then carry no credentials).
    Returns the session as sealed and the cookie value.
    """
    keeps = (keep_group,) if isinstance(keep_group, str) else keep_group
    candidates = (
        session,
        session.replace(id_token=""),
        session.replace(id_token="", groups=tuple(g for g in session.groups if g in keeps)),
        session.replace(
            id_token="",
            groups=tuple(g for g in session.groups if g in keeps),
            refresh_token="",
            expires_at=min(session.expires_at, session.access_expires_at),
        ),
        session.replace(
            id_token="",
            groups=tuple(g for g in session.groups if g in keeps),
            refresh_token="",
            access_token="",
            expires_at=min(session.expires_at, session.access_expires_at),
        ),
    )
    for candidate in candidates:
        value = sealer.seal(candidate.to_payload())
        if len(value) <= MAX_COOKIE_CHARS:
            if candidate is not session:
                logger.info("session of %s trimmed to fit in a cookie", session.subject[:64])
            return candidate, value
    raise ValueError("the session does not fit in a cookie (subject or name far too long)")
