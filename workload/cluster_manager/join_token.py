"""The join token a cluster is given: base64 of a small JSON object (PROTOCOL.md)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from datetime import datetime

MAX_TOKEN_LENGTH = 8192


class InvalidTokenError(ValueError):
    """The text is not a join token."""


@dataclasses.dataclass(frozen=True)
class JoinToken:
    """What a join token carries."""

    secret: str
    expires_at: datetime
    addresses: tuple[str, ...]
    server_name: str
    fingerprint: str

    def encode(self) -> str:
        """Return the token as the client reads it: standard, padded base64 of JSON."""
        body = {
            "secret": self.secret,
            "expires_at": self.expires_at.isoformat(),
            "addresses": list(self.addresses),
            # The design document names a singular address; the client ignores it.
            "address": self.addresses[0] if self.addresses else "",
            "server_name": self.server_name,
            "fingerprint": self.fingerprint,
        }
        return base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()

    @classmethod
    def decode(cls, text: str) -> JoinToken:
        """Parse a token, refusing one the MicroCloud client would refuse."""
        if not isinstance(text, str) or not text or len(text) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("token is empty or too long")
        try:
            body = json.loads(base64.b64decode(text.strip(), validate=True))
        except (binascii.Error, ValueError):
            raise InvalidTokenError("token is not base64-encoded JSON") from None
        except RecursionError:
            raise InvalidTokenError("token is nested too deeply") from None
        if not isinstance(body, dict):
            raise InvalidTokenError("token is not a JSON object")
        for key in ("secret", "server_name", "fingerprint", "expires_at"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise InvalidTokenError(f"token has no {key}")
        addresses = body.get("addresses")
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and a for a in addresses)
        ):
            raise InvalidTokenError("token has no addresses")
        try:
            expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        except ValueError:
            raise InvalidTokenError("token has an invalid expires_at") from None
        return cls(
            secret=body["secret"],
            expires_at=expires_at,
            addresses=tuple(addresses),
            server_name=body["server_name"],
            fingerprint=body["fingerprint"].lower(),
        )
