"""Connector request handlers: parse, call the service functions, answer."""

from __future__ import annotations

import logging

from aiohttp import web

from cluster_manager import clusters, heartbeats, validation
from cluster_manager.certificates import fingerprint
from cluster_manager.connector.limits import LIMITS
from cluster_manager.db import POOL
from cluster_manager.envelope import sync_response
from cluster_manager.errors import Forbidden, PayloadTooLarge
from cluster_manager.forwarding import FORWARDER
from cluster_manager.identity import IDENTITIES, ClusterIdentity
from cluster_manager.mtls import peer_certificate
from cluster_manager.settings import Settings

logger = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)

routes = web.RouteTableDef()


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"body larger than {limit} bytes") from None


def _peer_fingerprint(request: web.Request) -> str:
    der = peer_certificate(request)
    if der is None:
        raise Forbidden("a client certificate is required")
    return fingerprint(der)


async def _identify(request: web.Request, cert_fingerprint: str) -> ClusterIdentity:
    identity = await request.app[IDENTITIES].lookup(cert_fingerprint)
    if identity is None:
        raise Forbidden("unknown cluster certificate")
    return identity


@routes.get("/")
async def root(_request: web.Request) -> web.Response:
    """Answer the client's certificate probe (it only reads the server certificate)."""
    return sync_response({"api_version": "1.0", "service": "cluster-connector"})


@routes.post("/1.0/remote-cluster")
async def join(request: web.Request) -> web.Response:
    """Enrol a cluster with a join token (in the body or as an HMAC signature)."""
    settings = request.app[SETTINGS]
    body = await _read_body(request, settings.max_join_bytes)
    payload = validation.parse_json_object(body)
    claimed = payload.get("cluster_name")
    key = claimed[:64] if isinstance(claimed, str) else ""
    request.app[LIMITS].per_join_name.check(key, "join attempts for this cluster name")
    result = await clusters.join_cluster(
        request.app[POOL],
        payload,
        body,
        request.headers.get("Authorization"),
        peer_certificate(request),
    )
    logger.info("cluster %s joined", result["name"])
    return sync_response(result)


@routes.post("/1.0/remote-cluster/status")
async def status(request: web.Request) -> web.Response:
    """Store a heartbeat from an enrolled cluster (identity: its certificate)."""
    cert_fingerprint = _peer_fingerprint(request)
    request.app[LIMITS].per_cluster.check(cert_fingerprint, "heartbeats from this cluster")
    identity = await _identify(request, cert_fingerprint)
    body = await _read_body(request, request.app[SETTINGS].max_heartbeat_bytes)
    heartbeat = heartbeats.parse_heartbeat(body)
    pool = request.app[POOL]
    if not await heartbeats.store_heartbeat(pool, identity.id, heartbeat):
        # Removed (or removed and enrolled again) since it was cached: ask the database.
        request.app[IDENTITIES].evict(cert_fingerprint)
        identity = await _identify(request, cert_fingerprint)
        if not await heartbeats.store_heartbeat(pool, identity.id, heartbeat):
            raise Forbidden("unknown cluster certificate")
    request.app[FORWARDER].submit(identity.name, heartbeat)  # queues only; never fails or waits
    return sync_response({})


@routes.delete("/1.0/remote-cluster")
async def leave(request: web.Request) -> web.Response:
    """The cluster leaves the manager."""
    cert_fingerprint = _peer_fingerprint(request)
    request.app[LIMITS].per_cluster.check(cert_fingerprint, "requests from this cluster")
    name = await clusters.leave_cluster(request.app[POOL], cert_fingerprint)
    request.app[IDENTITIES].evict(cert_fingerprint)
    logger.info("cluster %s left", name)
    return sync_response({})
