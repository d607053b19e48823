"""The JSON text frames of the reverse tunnel, as the MicroCloud daemon reads and writes them.

Taken from canonical/microcloud (commit f26e73c0):

- ``api/types/cluster_manager.go`` lines 109-125: the request is
  ``{"uuid", "method", "path", "headers": http.Header, "body": []byte}`` and the response
  ``{"uuid", "status", "headers": http.Header, "cookies": [...], "body": []byte}``. Go's
  ``encoding/json`` writes ``[]byte`` as standard base64 (``null`` when empty) and
  ``http.Header`` as ``{name: [values]}``; a header given as a plain string would make the
  daemon's ``ReadJSON`` fail, and it drops the tunnel on any read error
  (``cmd/microcloudd/cluster_manager_tunnel.go`` lines 204-210).
- PROTOCOL.md names the id ``id``; the daemon's field is ``uuid`` (Go matches JSON keys
  case-insensitively but not by other names). Requests carry both keys with the same value;
  answers are read from ``uuid`` or ``id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from cluster_manager.fields import field_message

MAX_ID_LENGTH = 128
RequestId = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]


class FrameError(ValueError):
    """A frame from the cluster that is not a tunnel answer."""


class TunnelRequest(msgspec.Struct):
    """One request frame, manager to cluster (``[]byte`` is base64 in Go and in msgspec)."""

    uuid: str
    id: str
    method: str
    path: str
    headers: dict[str, list[str]]
    body: bytes | None


class TunnelAnswer(msgspec.Struct, kw_only=True):
    """One answer frame: the request id, the HTTP status and the raw LXD body (maybe empty).

    The daemon writes the id as ``uuid``; ``id`` (PROTOCOL.md's name) is read when it does not.
    Null headers or body (Go's nil map and slice) are read as empty; ``cookies`` is ignored.
    """

    uuid: RequestId | None = None
    id: RequestId | None = None
    status: Annotated[int, msgspec.Meta(ge=100, le=599)]
    headers: dict[str, list[str]] | None = None
    body: bytes | None = None

    def __post_init__(self) -> None:
        """The request id from ``uuid`` or ``id``; null headers and body as empty."""
        self.id = self.uuid if self.uuid is not None else self.id
        if not self.id:
            raise ValueError("the frame has no request id")
        if self.headers is None:
            self.headers = {}
        if self.body is None:
            self.body = b""


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(TunnelAnswer)


def encode_request(
    request_id: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """The text frame the manager sends for one request (the id under both names).

    ``headers`` become Go ``http.Header`` lists. Names must be in Go's canonical form
    (``Authorization``, ``Cookie``): the daemon reads them with ``req.Headers.Get``, which
    looks up the canonical name only (canonical/microcloud f26e73c0
    ``cmd/microcloudd/cluster_manager_tunnel.go`` lines 251-252), so they are canonicalised
    here. Frames carry credentials: never log them.
    """
    frame = TunnelRequest(
        uuid=request_id,
        id=request_id,
        method=method,
        path=path,
        headers={canonical(name): [value] for name, value in (headers or {}).items()},
        body=body or None,
    )
    return _ENCODER.encode(frame).decode()


def canonical(name: str) -> str:
    """A header name as Go's ``textproto.CanonicalMIMEHeaderKey`` writes it (ASCII names)."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def decode_answer(data: str | bytes) -> TunnelAnswer:
    """Parse an answer frame; raise :class:`FrameError` with a short reason otherwise."""
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as error:
        raise FrameError(field_message(error, "frame")) from None
    except RecursionError:
        raise FrameError("the frame is nested too deeply") from None


def lxd_envelope(body: bytes) -> dict[str, Any] | None:
    """LXD's JSON response envelope from an answer's body; ``None`` when empty or not JSON."""
    if not body:
        return None
    try:
        envelope = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    return envelope if isinstance(envelope, dict) else None
