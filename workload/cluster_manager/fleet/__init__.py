"""Simulated MicroCloud clusters that talk to the Cluster Connector exactly like the real client.

Used by the tests, ``cluster-manager demo --simulate N`` and the benchmark. Every request opens
new connections: a probe without verification or client certificate (``GET /``), the pin check
of SHA-256(server certificate) against the token, then a TLS 1.3 connection trusting only that
certificate, checking the host name and presenting the cluster's own ECDSA P-384 certificate
(see PROTOCOL.md and :mod:`cluster_manager.fleet.client`).

One cluster (tests)::

    cluster = SimulatedCluster("edge-1")          # new self-signed P-384 identity
    status, body = await cluster.join(token)       # token in the body
    status, body = await cluster.join(token, hmac=True)  # HMAC-signed body instead
    status, body = await cluster.heartbeat()       # next generated payload
    status, body = await cluster.heartbeat(b"{")   # raw bytes, sent as they are
    status, body = await cluster.leave()
    # A status other than 200 raises RequestRefusedError (.status, .body); check=False returns it.
    # A certificate that does not match the token raises CertificateMismatchError.
    # A 200 with a body or without Connection: close (it would leak a socket in the real
    # daemon) raises LeakingAnswerError.

A fleet (demo)::

    stats = await run_fleet(tokens, interval=60)   # enrols len(tokens) clusters, beats forever
    stats = await run_fleet(make_token, count=5)   # make_token(name) -> token (or awaitable)
    fleet = Fleet(5, interval=10); await fleet.enrol(tokens); await fleet.run()  # fleet.stop()
    fleet.stats.summary()                          # "join 200=5; heartbeat 200=42"

Payloads alone: ``StatusGenerator(seed, metrics_bytes=20 * 1024).next()``.
"""

from cluster_manager.fleet.client import (
    CertificateMismatchError,
    ClusterIdentity,
    ConnectorError,
    ConnectorUnreachableError,
    LeakingAnswerError,
    RequestRefusedError,
)
from cluster_manager.fleet.cluster import NotJoinedError, SimulatedCluster
from cluster_manager.fleet.payload import DEFAULT_METRICS_BYTES, PAYLOAD_KEYS, StatusGenerator
from cluster_manager.fleet.runner import Fleet, FleetStats, run_fleet

__all__ = [
    "DEFAULT_METRICS_BYTES",
    "PAYLOAD_KEYS",
    "CertificateMismatchError",
    "ClusterIdentity",
    "ConnectorError",
    "ConnectorUnreachableError",
    "Fleet",
    "FleetStats",
    "LeakingAnswerError",
    "NotJoinedError",
    "RequestRefusedError",
    "SimulatedCluster",
    "StatusGenerator",
    "run_fleet",
]
