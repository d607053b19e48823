r"""The internal unit-to-unit channel: a unit asks the unit holding a tunnel to use it.

Plain HTTP on ``internal_host:internal_port``, reached at the ``internal_address`` each unit
records with its tunnels (never through Traefik). Every request is signed with the key all
units share (``internal_key_file``, hex, at least 32 bytes)::

    X-MCM-Unit-Time:      unix seconds
    X-MCM-Unit-Nonce:     32 hex digits, random
    X-MCM-Unit-Signature: hex HMAC-SHA256(key, "<time>\\n<nonce>\\n<method>\\n<path>\\n" + body)

The receiver checks the signature in constant time, refuses a time more than
``MAX_SKEW`` seconds away and a nonce it has seen in that window (no replay), and answers
401 without saying which check failed. The body is a :class:`UnitRequest`; the answer a
:class:`UnitAnswer` (the cluster's answer) or the usual JSON error with the status a local
request would have had (503, 504, 502, 429).

The caller's credentials for LXD (a user's ``Authorization: Bearer`` header) travel in
``UnitRequest.credentials`` encrypted with AES-256-GCM under a key derived from the shared key
(the channel is plain HTTP), bound to the cluster, method and path, so a copy is no use for
another call and nobody on the path reads the token.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import json
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Annotated

import aiohttp
import msgspec
from aiohttp import web
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cluster_manager.envelope import error_middleware
from cluster_manager.errors import ApiError, BadRequest, TooManyRequests, Unauthorized
from cluster_manager.fields import decode
from cluster_manager.settings import Settings, SettingsError
from cluster_manager.tunnel.errors import TunnelBroken, TunnelNotConnected, TunnelTimeout

logger = logging.getLogger(__name__)

PATH = "/internal/1.0/tunnel/{cluster_id}"
MAX_SKEW = 30
MAX_NONCES = 100_000
TIME_HEADER = "X-MCM-Unit-Time"
NONCE_HEADER = "X-MCM-Unit-Nonce"
SIGNATURE_HEADER = "X-MCM-Unit-Signature"


def load_key(settings: Settings) -> bytes | None:
    """The shared key from ``internal_key_file``; None when the setting is empty."""
    if not settings.internal_key_file:
        return None
    try:
        key = bytes.fromhex(Path(settings.internal_key_file).read_text().strip())
    except (OSError, ValueError):
        raise SettingsError("internal_key_file: cannot read a hex key from it") from None
    if len(key) < 32:
        raise SettingsError("internal_key_file: the key must be at least 32 bytes")
    return key


def sign(key: bytes, timestamp: str, nonce: str, method: str, path: str, body: bytes) -> str:
    """The signature of one internal request."""
    message = f"{timestamp}\n{nonce}\n{method}\n{path}\n".encode() + body
    return hmac.new(key, message, "sha256").hexdigest()


@functools.lru_cache(maxsize=4)
def _credentials_cipher(key: bytes) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"mcm-unit-credentials"
    ).derive(key)
    return AESGCM(derived)


def _binding(cluster: str, method: str, path: str) -> bytes:
    return f"{cluster}\n{method}\n{path}".encode()


def seal_headers(key: bytes, cluster: str, call: Call) -> bytes | None:
    """The call's headers encrypted for the unit holding the tunnel (None without any)."""
    if not call.headers:
        return None
    nonce = os.urandom(12)
    plaintext = json.dumps(call.headers).encode()
    binding = _binding(cluster, call.method, call.path)
    return nonce + _credentials_cipher(key).encrypt(nonce, plaintext, binding)


def open_headers(key: bytes, asked: UnitRequest) -> dict[str, str]:
    """The headers a unit sealed with :func:`seal_headers`; BadRequest if damaged."""
    if not asked.credentials:
        return {}
    sealed = asked.credentials
    binding = _binding(asked.cluster, asked.method, asked.path)
    try:
        plaintext = _credentials_cipher(key).decrypt(sealed[:12], sealed[12:], binding)
        headers = json.loads(plaintext)
    except (InvalidTag, ValueError):
        raise BadRequest("credentials: cannot be opened") from None
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise BadRequest("credentials: not a header map")
    return headers


class _Nonces:
    """Nonces seen within the time window, oldest first."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()

    def fresh(self, nonce: str, now: float) -> bool:
        while self._seen and (
            len(self._seen) >= MAX_NONCES or next(iter(self._seen.values())) < now - 2 * MAX_SKEW
        ):
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


def _authenticate(request: web.Request, key: bytes, body: bytes, nonces: _Nonces) -> None:
    timestamp = request.headers.get(TIME_HEADER, "")
    nonce = request.headers.get(NONCE_HEADER, "")
    given = request.headers.get(SIGNATURE_HEADER, "")
    expected = sign(key, timestamp, nonce, request.method, request.path_qs, body)
    now = time.time()
    valid = hmac.compare_digest(given.encode(), expected.encode())
    if not valid or not timestamp.isdigit() or abs(now - int(timestamp)) > MAX_SKEW:
        raise Unauthorized("unit-to-unit request not authenticated")
    if len(nonce) != 32 or not nonces.fresh(nonce, now):
        raise Unauthorized("unit-to-unit request not authenticated")


def create_app(settings: Settings, hub: object, key: bytes) -> web.Application:
    """The internal application: one route, every request signed."""
    from cluster_manager.tunnel.hub import TunnelHub

    assert isinstance(hub, TunnelHub)
    app = web.Application(
        middlewares=[error_middleware], client_max_size=2 * settings.tunnel_max_frame_bytes
    )
    nonces = _Nonces()

    async def forwarded(request: web.Request) -> web.Response:
        body = await request.read()
        _authenticate(request, key, body, nonces)
        asked = decode(body, UnitRequest)
        cluster_id = request.match_info["cluster_id"]
        if not (cluster_id.isascii() and cluster_id.isdigit()) or len(cluster_id) > 18:
            raise BadRequest("cluster_id must be a number")
        tunnel = hub.local(int(cluster_id))
        if tunnel is None:
            raise TunnelNotConnected(asked.cluster, " (its tunnel just closed)")
        answer = await tunnel.request(
            asked.method,
            asked.path,
            asked.body or b"",
            settings.tunnel_request_timeout,
            open_headers(key, asked),
        )
        encoded = _ENCODER.encode(UnitAnswer(answer.status, answer.body or None))
        return web.Response(body=encoded, content_type="application/json")

    app.router.add_post(PATH, forwarded)
    return app


_ERRORS: dict[int, type[ApiError]] = {502: TunnelBroken, 504: TunnelTimeout}


@dataclasses.dataclass(frozen=True)
class Call:
    """One call to send through a tunnel (``headers``: the caller's credentials for LXD)."""

    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)


class UnitRequest(msgspec.Struct):
    """What a unit asks the unit holding a cluster's tunnel to send through it."""

    cluster: str
    method: str
    path: str
    body: bytes | None = None  # base64 in JSON
    credentials: bytes | None = None  # sealed headers (seal_headers), base64 in JSON


class UnitAnswer(msgspec.Struct):
    """The cluster's answer, passed back to the unit that asked."""

    status: Annotated[int, msgspec.Meta(ge=100, le=599)]
    body: bytes | None = None


class _Refusal(msgspec.Struct):
    error: str = ""


_ENCODER = msgspec.json.Encoder()
_ANSWER = msgspec.json.Decoder(UnitAnswer)
_ERROR = msgspec.json.Decoder(_Refusal)


async def forward(
    session: aiohttp.ClientSession,
    key: bytes,
    unit_address: str,
    cluster_id: int,
    cluster: str,
    call: Call,
    time_limit: float,
) -> tuple[int, bytes]:
    """Ask the unit at ``unit_address`` to send a request through its tunnel."""
    url_path = PATH.format(cluster_id=cluster_id)
    credentials = seal_headers(key, cluster, call)
    data = _ENCODER.encode(
        UnitRequest(cluster, call.method, call.path, call.body or None, credentials)
    )
    timestamp, nonce = str(int(time.time())), os.urandom(16).hex()
    headers = {
        TIME_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign(key, timestamp, nonce, "POST", url_path, data),
        "Content-Type": "application/json",
    }
    try:
        async with session.post(
            f"http://{unit_address}{url_path}",
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=time_limit, connect=5),
        ) as response:
            raw = await response.read()
            status = response.status
    except TimeoutError:
        raise TunnelTimeout(
            f"the unit holding the tunnel of cluster {cluster} did not answer in {time_limit:g} s"
        ) from None
    except (aiohttp.ClientError, OSError, ValueError):
        raise TunnelNotConnected(cluster, " (the unit holding it cannot be reached)") from None
    if status == 200:
        try:
            answer = _ANSWER.decode(raw)
        except msgspec.DecodeError:
            raise TunnelBroken(
                f"the unit holding the tunnel of cluster {cluster} garbled"
            ) from None
        return answer.status, answer.body or b""
    try:
        message = _ERROR.decode(raw).error
    except msgspec.DecodeError:
        message = ""
    if status == 503:
        raise TunnelNotConnected(cluster, " (its tunnel just closed)")
    if status == 429:
        raise TooManyRequests(str(message), retry_after=1)
    if status in _ERRORS:
        raise _ERRORS[status](str(message))
    logger.warning("unit-to-unit request to %r answered %s", unit_address, status)
    raise TunnelBroken(f"the unit holding the tunnel of cluster {cluster} answered {status}")
