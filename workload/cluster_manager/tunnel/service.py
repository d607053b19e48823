"""``await tunnels.request(cluster, method, path, body) -> (status, lxd_envelope)`` from any unit.

If the cluster's tunnel lives on this unit the request goes straight into it; otherwise it goes
to the unit recorded in remote_cluster_tunnels over the signed unit-to-unit channel
(:mod:`cluster_manager.tunnel.channel`). Failures are API errors: 503 tunnel not connected
(naming the ``microcloud`` command that enables it), 504 on a timeout, 502 when the tunnel
breaks, 429 when too many requests already wait; the cluster's own answers (its 500 without
a body too) come back as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import asyncpg

from cluster_manager.errors import BadRequest, NotFound, PayloadTooLarge
from cluster_manager.settings import Settings
from cluster_manager.tunnel import channel, frames, metrics, store
from cluster_manager.tunnel.errors import TunnelNotConnected
from cluster_manager.tunnel.hub import TunnelHub

# What the daemon forwards to LXD (cluster_manager_tunnel.go lines 226-242); it answers 400
# or 405 to anything else, so refuse it here with a clearer message.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
MAX_PATH_LENGTH = 2048


class Tunnels:
    """The service the management API, the CLI and later features call."""

    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, hub: TunnelHub | None = None
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.hub = hub
        self.key = channel.load_key(settings)
        self._session: aiohttp.ClientSession | None = None

    def max_body_bytes(self) -> int:
        """The largest request body: its base64 must fit in one frame."""
        return self.settings.tunnel_max_frame_bytes * 3 // 4 - 4096

    async def close(self) -> None:
        """Close the unit-to-unit HTTP client."""
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        cluster: str,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        """Send one LXD API request to a cluster through its tunnel; return its answer.

        Returns the HTTP status the cluster answered and LXD's JSON envelope (``None`` when
        the answer has no body, as the daemon sends a 500 when LXD cannot be reached).
        ``headers`` go in the frame (the daemon passes on only ``Authorization`` and
        ``Cookie``): the caller's credentials for LXD, see :mod:`cluster_manager.remote_lxd`.
        """
        status, raw = await self.request_raw(cluster, method, path, body, headers=headers)
        return status, frames.lxd_envelope(raw)

    async def request_raw(
        self,
        cluster: str,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        ui_files: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Like :meth:`request`, with the answer's body as bytes.

        ``ui_files`` also lets ``/ui`` paths (LXD's web UI files) by; the daemon at
        canonical/microcloud f26e73c0 answers them 400 (it forwards only ``/1.0``).
        """
        try:
            answer = await self._request_raw(
                cluster, method, path, body, ui_files=ui_files, headers=dict(headers or {})
            )
        except Exception as error:
            metrics.TUNNEL_REQUESTS.labels(metrics.outcome(error)).inc()
            raise
        metrics.TUNNEL_REQUESTS.labels("answered").inc()
        return answer

    async def _request_raw(
        self,
        cluster: str,
        method: str,
        path: str,
        body: bytes | None,
        *,
        ui_files: bool,
        headers: dict[str, str],
    ) -> tuple[int, bytes]:
        method = method.upper()
        if method not in METHODS:
            raise BadRequest(f"method {method[:16]!r} cannot go through a tunnel")
        roots = ("/1.0", "/ui") if ui_files else ("/1.0",)
        if (
            not any(path == root or path.startswith(root + "/") for root in roots)
            or len(path) > MAX_PATH_LENGTH
            or any(ch in path for ch in "\r\n\x00#")
        ):
            raise BadRequest(
                "the path must start with "
                + " or ".join(root + "/" for root in roots)
                + " and be a plain URL path"
            )
        if body and len(body) > self.max_body_bytes():
            raise PayloadTooLarge(f"body larger than {self.max_body_bytes()} bytes")
        row = await store.route(self.pool, cluster, self.settings.tunnel_liveness_interval)
        if row is None:
            raise NotFound(f"cluster {cluster[:64]!r} not found")
        timeout = self.settings.tunnel_request_timeout
        local = self.hub.local(row["id"]) if self.hub is not None else None
        if local is not None:
            answer = await local.request(method, path, body, timeout, headers)
            return answer.status, answer.body or b""
        unit = row["unit_address"]
        # A process without a hub (the CLI) holds no tunnel, even if it shares a unit's address.
        if unit is None or (self.hub is not None and unit == self.settings.internal_address):
            raise TunnelNotConnected(cluster)
        if self.key is None:
            raise TunnelNotConnected(
                cluster, f" on this unit (it is on {unit}, and internal_key_file is not set)"
            )
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return await channel.forward(
            self._session,
            self.key,
            unit,
            row["id"],
            cluster,
            channel.Call(method, path, body, headers),
            timeout + 5,
        )
