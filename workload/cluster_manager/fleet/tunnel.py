"""The MicroCloud daemon's side of the reverse tunnel, for simulated clusters.

Follows canonical/microcloud at commit f26e73c0:

- dialing (``client/cluster_manager_client.go`` lines 89-107, 159-208): the usual probe of the
  token's addresses and certificate pin, then gorilla/websocket's default ``Dialer`` to
  ``wss://<address>/1.0/remote-cluster/ws`` with the pinned TLS configuration and the
  cluster certificate; no subprotocol, no extra headers, no read limit;
- serving (``cmd/microcloudd/cluster_manager_tunnel.go`` lines 203-222): read one JSON frame,
  handle it, write the answer, in order; any read or write error (a frame that is not a
  request, e.g. not JSON or a header given as a string) drops the tunnel. gorilla answers
  pings only while it reads, so a cluster busy with a request does not answer them;
- answering (lines 225-296): a path not ``/1.0`` or under ``/1.0/`` gets 400, a method other
  than GET/POST/PUT/PATCH/DELETE 405, LXD unreachable 500, all without a body; otherwise
  LXD's status, headers and body (its JSON envelope), the id echoed as ``uuid``
  (``api/types/cluster_manager.go`` lines 109-125).

``forward_ui=True`` simulates a daemon that also forwards ``/ui/`` (LXD's web UI files); the
daemon at f26e73c0 does not (line 226: 400 for any path outside ``/1.0``), so it is off by
default.

Credentials: the daemon copies only the frame's ``Cookie`` and ``Authorization`` headers onto
its request to LXD (lines 251-252, through ``http.Header.Get``: the canonical name, first
value) and has no client certificate for it. ``lxd_oidc`` (:class:`LxdOidc`) makes the
simulated LXD demand and check a bearer token as a real LXD trusting an OpenID provider does;
without it (the default) the simulated LXD lets every call by.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from typing import Any

import aiohttp

from cluster_manager.fleet import client
from cluster_manager.fleet.cluster import SimulatedCluster
from cluster_manager.fleet.lxd import InMemoryLXD, ui_file
from cluster_manager.fleet.lxd_oidc import LxdOidc

TUNNEL_PATH = "/1.0/remote-cluster/ws"
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class TunnelClosedError(client.ConnectorError):
    """The tunnel ended."""


def decode_request(data: str | bytes) -> dict[str, Any]:
    """Read a request frame as Go's ``encoding/json`` would into ClusterManagerTunnelRequest.

    Raises ValueError where ``conn.ReadJSON`` fails (the daemon then drops the tunnel).
    """
    frame = json.loads(data)
    if not isinstance(frame, dict):
        raise ValueError("not an object")
    fields = {key.lower(): value for key, value in frame.items()}  # Go matches case-insensitively
    for key in ("uuid", "method", "path"):
        if fields.get(key) is not None and not isinstance(fields[key], str):
            raise ValueError(f"{key} is not a string")
    headers = fields.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in headers.values()
    ):
        raise ValueError("headers is not an http.Header")
    body = fields.get("body")
    if body is not None and not isinstance(body, str):
        raise ValueError("body is not base64")
    try:
        raw = base64.b64decode(body or "", validate=True)
    except binascii.Error:
        raise ValueError("body is not base64") from None
    return {
        "uuid": fields.get("uuid") or "",
        "method": fields.get("method") or "",
        "path": fields.get("path") or "",
        "body": raw,
        # What reaches LXD: req.Headers.Get(...) of these two only (lines 251-252).
        "authorization": (headers.get("Authorization") or [""])[0],
        "cookie": (headers.get("Cookie") or [""])[0],
    }


def answer(
    request_id: str, status: int, body: bytes = b"", content_type: str = "application/json"
) -> str:
    """An answer frame as the daemon's ``WriteJSON`` writes ClusterManagerTunnelResponse.

    A body-less answer is one of the daemon's own (400, 405, 500: a struct literal with nil
    headers, cookies and body, all ``null``); an answer from LXD carries its headers and
    ``lxdResponse.Cookies()`` (line 293), which is an empty list, not ``null``, when LXD sets
    none (Go's ``readSetCookies`` returns ``[]*Cookie{}``).
    """
    headers = {"Content-Type": [content_type]} if body else None
    frame = {
        "uuid": request_id,
        "status": status,
        "headers": headers,
        "cookies": [] if body else None,
        "body": base64.b64encode(body).decode() if body else None,
    }
    return json.dumps(frame)


class SimulatedTunnel:
    """A simulated cluster's reverse tunnel, answering from an in-memory LXD.

    ``answer_delay`` makes LXD slow; ``lxd_down`` makes it unreachable (500 without a body);
    ``stop_answering()`` freezes the cluster (it reads nothing more, so no pongs either).
    """

    def __init__(
        self,
        cluster: SimulatedCluster,
        lxd: InMemoryLXD | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        answer_delay: float = 0.0,
        forward_ui: bool = False,
        lxd_oidc: LxdOidc | None = None,
    ) -> None:
        self.cluster = cluster
        self.forward_ui = forward_ui
        self.lxd_oidc = lxd_oidc
        self.authorizations: list[str] = []  # the Authorization header of every call
        self.cookies: list[str] = []  # and its Cookie header
        self.lxd = lxd or InMemoryLXD.sample(cluster.name)
        self.answer_delay = answer_delay
        self.lxd_down = False
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.answered = 0
        self.dropped_reason = ""
        self._session = session
        self._own_session = session is None
        self._frozen = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Probe, pin, then open the WebSocket (raises on a refused upgrade)."""
        token = self.cluster._token()
        address, der = await client.fetch_certificate(
            token.addresses, self.cluster.timeout, hosts=self.cluster.hosts
        )
        client.check_pin(address, der, token.fingerprint)
        host, port = client.split_address(address)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0)
            )
        connect_to = client.connect_host(host, self.cluster.hosts)
        url = f"wss://{connect_to}:{port}{TUNNEL_PATH}"
        self.ws = await self._session.ws_connect(
            url,
            ssl=self.cluster.identity.pinned_context(der),
            server_hostname=host,
            headers={"Host": address},
            autoping=True,
            max_msg_size=0,
        )

    def start(self) -> asyncio.Task[None]:
        """Serve requests in the background until the tunnel ends."""
        self._task = asyncio.create_task(self.serve())
        return self._task

    async def serve(self) -> None:
        """The daemon's loop: read a request, answer it, until an error drops the tunnel."""
        ws = self.ws
        assert ws is not None
        while True:
            if self._frozen.is_set():
                await asyncio.Event().wait()  # never reads again
            message = await ws.receive()
            if self._frozen.is_set():
                await asyncio.Event().wait()
            if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                self.dropped_reason = self.dropped_reason or f"read: {message.type.name}"
                break
            try:
                request = decode_request(message.data)
            except ValueError as error:
                self.dropped_reason = f"read: {error}"
                break
            status, body, content_type = await self._handle(request)
            try:
                await ws.send_str(answer(request["uuid"], status, body, content_type))
            except (ConnectionError, RuntimeError) as error:
                self.dropped_reason = f"write: {error}"
                break
            self.answered += 1
        await ws.close()

    async def _handle(self, request: dict[str, Any]) -> tuple[int, bytes, str]:
        path, method = request["path"], request["method"]
        json_type = "application/json"
        is_ui = self.forward_ui and (path == "/ui" or path.startswith("/ui/"))
        if path != "/1.0" and not path.startswith("/1.0/") and not is_ui:
            return 400, b"", json_type
        if method not in ALLOWED_METHODS:
            return 405, b"", json_type
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        if self.lxd_down:
            return 500, b"", json_type
        self.authorizations.append(request["authorization"])
        self.cookies.append(request["cookie"])
        if self.lxd_oidc is not None and not is_ui:  # LXD serves its UI files to anybody
            refusal = await self.lxd_oidc.authenticate(request["authorization"])
            if refusal is not None:
                return (*refusal, json_type)
        if is_ui:
            self.lxd.requests.append((method, path))
            return ui_file(path) if method == "GET" else (405, b"", json_type)
        return (*self.lxd.handle(method, path, request["body"]), json_type)

    def stop_answering(self) -> None:
        """Freeze: read nothing more (the cluster hangs, its TCP connection stays open)."""
        self._frozen.set()
        if self._task is not None:
            self._task.cancel()  # nobody reads any more: aiohttp answers pings only in receive()

    async def close(self) -> None:
        """Close the tunnel and the client session."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._own_session and self._session is not None:
            await self._session.close()


async def keep_open(
    cluster: SimulatedCluster,
    stop: asyncio.Event,
    lxd: InMemoryLXD | None = None,
    *,
    retry: float = 10.0,
    session: aiohttp.ClientSession | None = None,
) -> None:
    """Keep a tunnel open as the daemon does, until ``stop``.

    While none is open it tries again every ``retry`` seconds (the daemon's 10 s ticker,
    ``cmd/microcloudd/cluster_manager_tunnel.go`` lines 30 and 49-60).
    """
    lxd = lxd or InMemoryLXD.sample(cluster.name)
    while not stop.is_set():
        tunnel = SimulatedTunnel(cluster, lxd, session=session)
        try:
            await tunnel.connect()
            serving = tunnel.start()
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
        except (client.ConnectorError, aiohttp.ClientError, OSError, TimeoutError):
            pass
        finally:
            await tunnel.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retry)
