"""Connector request handlers: parse, call the service functions, answer.

Join, status and leave answer success with an empty 200 and ``Connection: close`` (see
:func:`~cluster_manager.envelope.empty_ok`); their errors keep the JSON envelope.
"""

from __future__ import annotations

import logging

from aiohttp import web

from cluster_manager import clusters, heartbeats
from cluster_manager.certificates import fingerprint
from cluster_manager.connector.body import read_body
from cluster_manager.connector.limits import LIMITS
from cluster_manager.db import POOL
from cluster_manager.envelope import empty_ok, sync_response
from cluster_manager.errors import Forbidden
from cluster_manager.fields import decode
from cluster_manager.forwarding import FORWARDER
from cluster_manager.heartbeat_writer import WRITER
from cluster_manager.identity import IDENTITIES, ClusterIdentity
from cluster_manager.mtls import peer_certificate
from cluster_manager.settings import Settings

logger = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)

routes = web.RouteTableDef()


def _peer_fingerprint(request: web.Request) -> str:
    der = peer_certificate(request)
    if der is None:
        raise Forbidden("a client certificate is required")
    return fingerprint(der)


def _label(request: web.Request, cert_fingerprint: str) -> str:
    """How a refusal log names the sender: its cluster name when known, and its fingerprint."""
    known = request.app[IDENTITIES].cached(cert_fingerprint)
    name = f"cluster {known.name} " if known else ""
    return f"{name}certificate {cert_fingerprint}"


async def _identify(request: web.Request, cert_fingerprint: str) -> ClusterIdentity:
    """The cluster behind a certificate; a lookup the cache cannot answer spends ``unverified``."""
    cache = request.app[IDENTITIES]
    identity = cache.cached(cert_fingerprint)
    if identity is None:
        if cache.listening:  # a miss costs a database read: unknown, or enrolled a moment ago
            request.app[LIMITS].unverified.check(
                "all", "requests from unknown certificates", "unknown"
            )
        identity = await cache.lookup(cert_fingerprint)
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
    limits = request.app[LIMITS]
    peer_der = peer_certificate(request)
    if peer_der is None:
        raise Forbidden("a join must present the cluster certificate over TLS")
    client = fingerprint(peer_der)
    limits.join_client.check(client, "join attempts from this certificate", f"client {client}")
    limits.unverified.check("all", "join attempts", "joins")
    body = await read_body(request, request.app[SETTINGS].max_join_bytes)
    payload = decode(body, clusters.JoinRequest)

    def charge_name(name: str) -> None:  # only once the secret is proven
        limits.join_name.check(name, "join attempts for this cluster name", f"cluster {name}")

    result = await clusters.join_cluster(
        request.app[POOL],
        payload,
        body,
        request.headers.get("Authorization"),
        peer_der,
        on_proof=charge_name,
    )
    logger.info("cluster %s joined", result["name"])  # a validated name
    return empty_ok()


@routes.post("/1.0/remote-cluster/status")
async def status(request: web.Request) -> web.Response:
    """Store a heartbeat from an enrolled cluster (identity: its certificate)."""
    limits = request.app[LIMITS]
    cert_fingerprint = _peer_fingerprint(request)
    limits.heartbeat.check(
        cert_fingerprint, "heartbeats from this cluster", _label(request, cert_fingerprint)
    )
    identity = await _identify(request, cert_fingerprint)
    limits.clusters.check("all", "requests from clusters", "all clusters")
    body = await read_body(request, request.app[SETTINGS].max_heartbeat_bytes)
    heartbeat = heartbeats.parse_heartbeat(body)
    writer = request.app[WRITER]  # with the heartbeats arriving meanwhile, in one statement
    if not await writer.store(identity.id, heartbeat):
        # Removed (or removed and enrolled again) since it was cached: ask the database.
        request.app[IDENTITIES].evict(cert_fingerprint)
        identity = await _identify(request, cert_fingerprint)
        if not await writer.store(identity.id, heartbeat):
            raise Forbidden("unknown cluster certificate")
    request.app[FORWARDER].submit(identity.name, heartbeat)  # queues only; never fails or waits
    return empty_ok()


@routes.delete("/1.0/remote-cluster")
async def leave(request: web.Request) -> web.Response:
    """The cluster leaves the manager (its own bucket: heartbeats never refuse it)."""
    limits = request.app[LIMITS]
    cert_fingerprint = _peer_fingerprint(request)
    limits.leave.check(cert_fingerprint, "leave requests", _label(request, cert_fingerprint))
    cache = request.app[IDENTITIES]
    if cache.listening and cache.cached(cert_fingerprint) is None:
        limits.unverified.check(
            "all", "requests from unknown certificates", "unknown certificates"
        )
    name = await clusters.leave_cluster(request.app[POOL], cert_fingerprint)
    cache.evict(cert_fingerprint)
    logger.info("cluster %s left", name)
    return empty_ok()
