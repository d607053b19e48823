"""One simulated MicroCloud cluster: its identity, its token and its three requests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cluster_manager.fleet import client
from cluster_manager.fleet.client import ClusterIdentity
from cluster_manager.fleet.payload import DEFAULT_METRICS_BYTES, StatusGenerator
from cluster_manager.join_token import JoinToken

JOIN_PATH = "/1.0/remote-cluster"
STATUS_PATH = "/1.0/remote-cluster/status"


class NotJoinedError(client.ConnectorError):
    """The cluster has no token yet, so it does not know where the Connector is."""


class SimulatedCluster:
    """A MicroCloud cluster as the Cluster Connector sees it.

    ``join``, ``heartbeat`` and ``leave`` each make one request the way the real client does and
    return ``(status, body)``; a status other than 200 raises
    :class:`~cluster_manager.fleet.client.RequestRefusedError` unless ``check=False``.
    """

    def __init__(
        self,
        name: str,
        *,
        identity: ClusterIdentity | None = None,
        seed: int | str | None = None,
        metrics_bytes: int = DEFAULT_METRICS_BYTES,
        interval: float = 60.0,
        timeout: float = client.DEFAULT_TIMEOUT,
        hosts: Mapping[str, str] | None = None,
    ) -> None:
        """``hosts`` maps the token's host names to IP addresses (tests; default: DNS)."""
        self.name = name
        self.hosts = dict(hosts or {})
        self.identity = identity or ClusterIdentity.generate(name)
        self.status = StatusGenerator(
            name if seed is None else seed, metrics_bytes=metrics_bytes, interval=interval
        )
        self.timeout = timeout
        self.token: JoinToken | None = None
        self.token_text = ""

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the cluster's certificate."""
        return self.identity.fingerprint

    def use_token(self, token: str) -> JoinToken:
        """Take the Connector's addresses and pinned fingerprint from a token, without joining.

        The cluster takes the token's ``server_name`` as its name, as the real client does.
        """
        self.token = JoinToken.decode(token)
        self.token_text = token
        self.name = self.token.server_name
        return self.token

    async def join(
        self,
        token: str | None = None,
        *,
        hmac: bool = False,
        certificate_pem: str | None = None,
        check: bool = True,
    ) -> tuple[int, bytes]:
        """Enrol: ``POST /1.0/remote-cluster``.

        Args:
            token: the base64 join token (defaults to the one given to :meth:`use_token`).
            hmac: sign the body with the token's secret instead of sending the token in it.
            certificate_pem: send this certificate in the body instead of our own (to test the
                server's refusal of a body that does not match the TLS peer).
            check: raise on a status other than 200.
        """
        parsed = self.use_token(token) if token is not None else self._token()
        payload: dict[str, Any] = {
            "cluster_name": parsed.server_name,
            "cluster_certificate": certificate_pem or self.identity.certificate_pem,
        }
        headers = {}
        if hmac:
            body = json.dumps(payload, separators=(",", ":")).encode()
            headers["Authorization"] = client.hmac_authorization(parsed.secret, body)
        else:
            payload["token"] = self.token_text
            body = json.dumps(payload, separators=(",", ":")).encode()
        return await self.request("POST", JOIN_PATH, body, headers, check=check)

    async def heartbeat(
        self, payload: Mapping[str, Any] | bytes | None = None, *, check: bool = True
    ) -> tuple[int, bytes]:
        """Report status: ``POST /1.0/remote-cluster/status``.

        ``payload`` defaults to the next generated status; raw bytes are sent as they are.
        """
        if payload is None:
            body = self.status.next_body()
        elif isinstance(payload, bytes):
            body = payload
        else:
            body = json.dumps(payload, separators=(",", ":")).encode()
        return await self.request("POST", STATUS_PATH, body, check=check)

    async def leave(self, *, check: bool = True) -> tuple[int, bytes]:
        """Leave the Cluster Manager: ``DELETE /1.0/remote-cluster``."""
        return await self.request("DELETE", JOIN_PATH, check=check)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        check: bool = True,
    ) -> tuple[int, bytes]:
        """Make any request the way the real client does: probe, pin, then send."""
        token = self._token()
        address, der = await client.fetch_certificate(
            token.addresses, self.timeout, hosts=self.hosts
        )
        client.check_pin(address, der, token.fingerprint)
        return await client.send(
            address,
            self.identity.pinned_context(der),
            method,
            path,
            body,
            headers,
            time_limit=self.timeout,
            check=check,
            hosts=self.hosts,
        )

    def _token(self) -> JoinToken:
        if self.token is None:
            raise NotJoinedError(f"cluster {self.name} has no join token")
        return self.token
