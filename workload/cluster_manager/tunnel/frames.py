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

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

MAX_ID_LENGTH = 128


class FrameError(ValueError):
    """A frame from the cluster that is not a tunnel answer."""


@dataclasses.dataclass(frozen=True)
class TunnelAnswer:
    """One answer frame: the request id, the HTTP status and the raw LXD body (maybe empty)."""

    id: str
    status: int
    headers: dict[str, list[str]]
    body: bytes


def encode_request(
    request_id: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """The text frame the manager sends for one request."""
    frame = {
        "uuid": request_id,
        "id": request_id,
        "method": method,
        "path": path,
        "headers": {name: [value] for name, value in (headers or {}).items()},
        "body": base64.b64encode(body).decode() if body else None,
    }
    return json.dumps(frame, separators=(",", ":"))


def decode_answer(data: str | bytes) -> TunnelAnswer:
    """Parse an answer frame; raise :class:`FrameError` with a short reason otherwise."""
    try:
        frame = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise FrameError("the frame is not JSON") from None
    if not isinstance(frame, dict):
        raise FrameError("the frame is not a JSON object")
    request_id = frame.get("uuid", frame.get("id"))
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_LENGTH:
        raise FrameError("the frame has no request id")
    status = frame.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise FrameError("the frame has no HTTP status")
    raw_body = frame.get("body")
    if raw_body is None or raw_body == "":
        body = b""
    elif isinstance(raw_body, str):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except (binascii.Error, ValueError):
            raise FrameError("the frame's body is not base64") from None
    else:
        raise FrameError("the frame's body is not base64")
    return TunnelAnswer(request_id, status, _headers(frame.get("headers")), body)


def _headers(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        return {}
    headers = {}
    for name, values in value.items():
        if isinstance(values, str):
            headers[name] = [values]
        elif isinstance(values, list):
            headers[name] = [v for v in values if isinstance(v, str)]
    return headers


def lxd_envelope(body: bytes) -> dict[str, Any] | None:
    """LXD's JSON response envelope from an answer's body; ``None`` when empty or not JSON."""
    if not body:
        return None
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return envelope if isinstance(envelope, dict) else None
