"""The join token a cluster is given: base64 of a small JSON object (PROTOCOL.md)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

import msgspec

from cluster_manager.fields import field_message

MAX_TOKEN_LENGTH = 8192

Given = Annotated[str, msgspec.Meta(min_length=1)]


class InvalidTokenError(ValueError):
    """The text is not a join token (the message starts with ``token``)."""


class JoinToken(msgspec.Struct, frozen=True, kw_only=True):
    """What a join token carries; the MicroCloud client refuses one without any of these."""

    secret: Given
    expires_at: datetime
    addresses: Annotated[tuple[Given, ...], msgspec.Meta(min_length=1)]
    server_name: Given
    fingerprint: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Fa-f]{64}$")]

    def encode(self) -> str:
        """Return the token as the client reads it: standard, padded base64 of JSON."""
        # The design document names a singular address; the client ignores it.
        body = msgspec.json.encode(_Written(**msgspec.structs.asdict(self)))
        return base64.b64encode(body).decode()

    @classmethod
    def decode(cls, text: object) -> JoinToken:
        """Parse a token, refusing one the MicroCloud client would refuse."""
        if not isinstance(text, str) or not text or len(text) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("token is empty or too long")
        try:
            token = _DECODER.decode(base64.b64decode(text.strip(), validate=True))
        except binascii.Error:
            raise InvalidTokenError("token is not base64-encoded JSON") from None
        except RecursionError:
            raise InvalidTokenError("token is nested too deeply") from None
        except msgspec.DecodeError as error:
            message = field_message(error, "token")
            if message.startswith("token: not valid JSON"):
                raise InvalidTokenError("token is not base64-encoded JSON") from None
            text = message if message[:5] == "token" else f"token.{message}"
            raise InvalidTokenError(text) from None
        return msgspec.structs.replace(token, fingerprint=token.fingerprint.lower())


class _Written(JoinToken, frozen=True, kw_only=True):
    address: str = ""

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "address", self.addresses[0])


_DECODER = msgspec.json.Decoder(JoinToken)
