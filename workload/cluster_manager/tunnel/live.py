"""One live reverse tunnel: send a request frame, await the answer with the same id.

The MicroCloud daemon handles frames one at a time, in order (its read loop in
canonical/microcloud ``cmd/microcloudd/cluster_manager_tunnel.go`` lines 203-222 reads a
request, calls LXD with a 30 s client timeout, line 267, and writes the answer), so requests
are sent one at a time too: a FIFO lock queues them, at most ``max_in_flight`` may wait.

The daemon's gorilla/websocket connection answers pings only while it waits in ``ReadJSON``,
not while LXD works on a request, so the keep-alive pings only an idle tunnel; a busy one is
judged by its request timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping

from aiohttp import WSCloseCode, WSMsgType, web

from cluster_manager.tunnel import frames
from cluster_manager.tunnel.errors import TunnelBroken, TunnelBusy, TunnelTimeout

logger = logging.getLogger(__name__)


class LiveTunnel:
    """A cluster's WebSocket on this unit and the requests waiting for its answers."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        cluster_id: int,
        cluster_name: str,
        fingerprint: str,
        *,
        max_in_flight: int,
        ping_interval: float,
        pong_timeout: float,
        transport: asyncio.Transport | None = None,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.cluster_id = cluster_id
        self.cluster_name = cluster_name
        self.fingerprint = fingerprint
        self.session = uuid.uuid4().hex
        self.claimed = False  # recorded in remote_cluster_tunnels
        self.recheck = False  # another claim was announced before this one's was in
        self.max_in_flight = max_in_flight
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.pending: dict[str, asyncio.Future[frames.TunnelAnswer]] = {}
        self.unknown_answers = 0
        self._order = asyncio.Lock()  # FIFO: waiters are woken in arrival order
        self._waiting = 0
        self._closed_reason = ""
        self._last_heard = asyncio.get_running_loop().time()

    @property
    def closed(self) -> bool:
        """Whether the tunnel has ended."""
        return bool(self._closed_reason) or self.ws.closed

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        time_limit: float,
        headers: Mapping[str, str] | None = None,
    ) -> frames.TunnelAnswer:
        """Send one request after the ones before it; return the cluster's answer."""
        if self._waiting >= self.max_in_flight:
            raise TunnelBusy(self.cluster_name, self.max_in_flight)
        self._waiting += 1
        request_id = uuid.uuid4().hex
        try:
            async with asyncio.timeout(time_limit):
                async with self._order:
                    self._check_open()
                    answer = asyncio.get_running_loop().create_future()
                    self.pending[request_id] = answer
                    frame = frames.encode_request(request_id, method, path, body, headers)
                    await self.ws.send_str(frame)
                    return await answer
        except TimeoutError:
            raise TunnelTimeout(
                f"cluster {self.cluster_name} did not answer within {time_limit:g} s"
            ) from None
        except (ConnectionError, RuntimeError):
            raise TunnelBroken(f"the tunnel of cluster {self.cluster_name} closed") from None
        finally:
            self._waiting -= 1
            self.pending.pop(request_id, None)

    def _check_open(self) -> None:
        if self.closed:
            raise TunnelBroken(
                f"the tunnel of cluster {self.cluster_name} closed: "
                f"{self._closed_reason or 'connection lost'}"
            )

    async def run(self) -> None:
        """Read answers until the tunnel ends, keeping it alive; then fail what still waits."""
        keepalive = asyncio.create_task(self._keepalive())
        try:
            await self._read()
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
            self._fail_pending(self._closed_reason or "connection lost")
            await self.close(WSCloseCode.GOING_AWAY, "")

    async def _read(self) -> None:
        ws = self.ws
        loop = asyncio.get_running_loop()
        while not ws.closed:
            message = await ws.receive()
            self._last_heard = loop.time()
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if not self._on_frame(message.data):
                    return
            elif message.type == WSMsgType.PING:
                await ws.pong(message.data)
            elif message.type == WSMsgType.PONG:
                continue
            elif message.type == WSMsgType.ERROR:
                self._closed_reason = f"the cluster sent a bad frame: {_short(message.data)}"
                logger.warning("tunnel of cluster %r: %s", self.cluster_name, self._closed_reason)
                await self.close(WSCloseCode.MESSAGE_TOO_BIG, "bad frame")
                return
            else:  # CLOSE, CLOSING, CLOSED
                self._closed_reason = self._closed_reason or "the cluster closed it"
                return

    def _on_frame(self, data: str | bytes) -> bool:
        try:
            answer = frames.decode_answer(data)
        except frames.FrameError as error:
            self._closed_reason = f"the cluster sent a bad frame: {error}"
            logger.warning("tunnel of cluster %r: %s", self.cluster_name, self._closed_reason)
            self._fail_pending(self._closed_reason)
            asyncio.get_running_loop().create_task(
                self.close(WSCloseCode.INVALID_TEXT, "not a tunnel answer")
            )
            return False
        waiting = self.pending.pop(answer.id or "", None)
        if waiting is None:
            self.unknown_answers += 1  # e.g. the late answer to a request that timed out
            logger.info("tunnel of cluster %r: answer to an unknown request", self.cluster_name)
        elif not waiting.done():
            waiting.set_result(answer)
        return True

    async def _keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.ws.closed:
            await asyncio.sleep(self.ping_interval)
            if self.pending or self._order.locked():
                continue  # the daemon answers pings only between requests
            sent = loop.time()
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.ping()
            await asyncio.sleep(self.pong_timeout)
            if self._last_heard < sent and not self.pending and not self._order.locked():
                self._closed_reason = f"no answer to a ping within {self.pong_timeout:g} s"
                logger.info("tunnel of cluster %r: %s", self.cluster_name, self._closed_reason)
                if self.transport is not None:
                    self.transport.abort()  # a dead peer would not answer a close frame either
                else:
                    await self.close(WSCloseCode.GOING_AWAY, "keep-alive timeout")
                return

    def _fail_pending(self, reason: str) -> None:
        for waiting in self.pending.values():
            if not waiting.done():
                waiting.set_exception(
                    TunnelBroken(f"the tunnel of cluster {self.cluster_name} closed: {reason}")
                )
        self.pending.clear()

    async def close(self, code: int = WSCloseCode.GOING_AWAY, reason: str = "") -> None:
        """Close the WebSocket (idempotent); the reader then ends."""
        if reason and not self._closed_reason:
            self._closed_reason = reason
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
                await self.ws.close(code=code, message=reason.encode()[:120])


def _short(error: object) -> str:
    """The reader's error without aiohttp's code prefix (e.g. a frame over the size limit)."""
    return str(error)[:200]
