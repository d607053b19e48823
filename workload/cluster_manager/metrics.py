"""The Cluster Manager's own metrics, served on the ops port as ``GET /metrics``.

Counters and histograms live in prometheus_client's default registry (with its process and
Python collectors: CPU, memory, file descriptors, GC). What is a state rather than an event is
read when Prometheus scrapes: clusters by status and stale clusters from the database (one
aggregate over ``remote_clusters``), connection pools and forwarding queues from the live objects
the servers register here.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Protocol

import asyncpg
import prometheus_client
from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cluster_manager import fleet_settings, worker_metrics
from cluster_manager.db import POOL
from cluster_manager.mtls import peer_certificate
from cluster_manager.settings import Settings

logger = logging.getLogger(__name__)

REGISTRY = prometheus_client.REGISTRY
HEARTBEAT_ENDPOINT = ("POST", "/1.0/remote-cluster/status")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = prometheus_client.Counter(
    "mcm_http_requests",
    "Requests answered, by server, method, route and status code.",
    ["server", "method", "endpoint", "code"],
)
HTTP_DURATION = prometheus_client.Histogram(
    "mcm_http_request_duration_seconds",
    "Time from the request's headers to the response, by server, method and route.",
    ["server", "method", "endpoint"],
    buckets=LATENCY_BUCKETS,
)
HEARTBEATS_ACCEPTED = prometheus_client.Counter("mcm_heartbeats_accepted", "Heartbeats stored.")
HEARTBEAT_WRITES = prometheus_client.Counter(
    "mcm_heartbeat_write_statements",
    "SQL statements that stored heartbeats: the heartbeats of a burst share one, so accepted"
    " heartbeats over this is the mean burst.",
)
HEARTBEATS_REFUSED = prometheus_client.Counter(
    "mcm_heartbeats_refused",
    "Heartbeats refused, by reason: no_certificate, unknown_certificate, rate_limited, invalid, "
    "too_large, unavailable (database), error.",
    ["reason"],
)
CONNECTOR_RATE_LIMITED = prometheus_client.Counter(
    "mcm_connector_rate_limited",
    "Connector requests refused with 429, by reason: heartbeat, leave, join_client, join_name "
    "(per certificate or name), clusters (the ceiling over identified clusters), unverified "
    "(joins and unknown certificates), probe (requests without a client certificate).",
    ["reason"],
)
CLUSTERS = prometheus_client.Gauge(
    "mcm_clusters", "Enrolled clusters by status (read from the database at scrape).", ["status"]
)
STALE_CLUSTERS = prometheus_client.Gauge(
    "mcm_clusters_stale",
    "Active clusters without a heartbeat for stale_after_intervals heartbeat intervals.",
)
FORWARD_DROPPED = prometheus_client.Counter(
    "mcm_forward_dropped_heartbeats",
    "Heartbeats not forwarded, by reason: queue_full, conversion_failed, backlog_full, rejected, "
    "shutdown (backlog_full, rejected and shutdown count once per destination).",
    ["reason"],
)
FORWARD_REQUESTS = prometheus_client.Counter(
    "mcm_forward_requests",
    "Remote-write requests by destination and outcome: sent, failed (retried), rejected.",
    ["destination", "outcome"],
)
FORWARD_SERIES = prometheus_client.Counter(
    "mcm_forward_series_sent",
    "Samples accepted by each remote-write destination.",
    ["destination"],
)
FORWARD_BAD_LINES = prometheus_client.Counter(
    "mcm_forward_bad_metric_lines", "Lines of members' metrics text skipped as invalid."
)
FORWARD_CUT = prometheus_client.Counter(
    "mcm_forward_metrics_cut_heartbeats",
    "Heartbeats whose members' metrics were not all forwarded: over the conversion budget "
    "(CPU time or characters per heartbeat).",
)
FORWARD_CPU = prometheus_client.Counter(
    "mcm_forward_conversion_cpu_seconds",
    "CPU time the forwarding workers spent parsing and encoding heartbeats.",
)

COUNT_CLUSTERS = """
SELECT status,
       count(*) AS clusters,
       count(*) FILTER (
           WHERE status = 'ACTIVE'
             AND coalesce(last_status_update_at, joined_at) < now() - make_interval(secs => $1)
       ) AS stale
FROM remote_clusters
GROUP BY status
"""
CLUSTER_STATUSES = ("ACTIVE", "PENDING_APPROVAL")


class ForwardingQueues(Protocol):
    """What the metrics read from a forwarder."""

    @property
    def queued_heartbeats(self) -> int:
        """Heartbeats waiting to be converted."""
        ...

    def backlog_bytes(self) -> dict[str, int]:
        """Encoded bytes waiting to be sent, by destination."""
        ...


_pools: list[tuple[str, asyncpg.Pool]] = []
_forwarders: list[ForwardingQueues] = []


class _LiveCollector(Collector):
    """Gauges read from the live pools and forwarders when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "mcm_db_pool_connections",
            "Database connections by server and state (in_use, idle).",
            labels=["server", "state"],
        )
        limits = GaugeMetricFamily(
            "mcm_db_pool_max_connections", "Pool size limit by server.", labels=["server"]
        )
        usage: dict[str, list[int]] = {}
        for server, pool in list(_pools):
            size, idle = pool.get_size(), pool.get_idle_size()
            totals = usage.setdefault(server, [0, 0, 0])
            totals[0] += size - idle
            totals[1] += idle
            totals[2] += pool.get_max_size()
        for server, (in_use, idle, maximum) in sorted(usage.items()):
            connections.add_metric([server, "in_use"], in_use)
            connections.add_metric([server, "idle"], idle)
            limits.add_metric([server], maximum)
        queue = GaugeMetricFamily(
            "mcm_forward_queue_heartbeats", "Accepted heartbeats waiting to be converted."
        )
        backlog = GaugeMetricFamily(
            "mcm_forward_backlog_bytes",
            "Encoded remote-write requests waiting to be sent, by destination.",
            labels=["destination"],
        )
        queue.add_metric([], sum(f.queued_heartbeats for f in list(_forwarders)))
        per_destination: dict[str, int] = {}
        for forwarder in list(_forwarders):
            for destination, size in forwarder.backlog_bytes().items():
                per_destination[destination] = per_destination.get(destination, 0) + size
        for destination, size in sorted(per_destination.items()):
            backlog.add_metric([destination], size)
        yield from (connections, limits, queue, backlog)


REGISTRY.register(_LiveCollector())


def track_forwarder(forwarder: ForwardingQueues) -> None:
    """Report a forwarder's queues until :func:`untrack_forwarder`."""
    _forwarders.append(forwarder)


def untrack_forwarder(forwarder: ForwardingQueues) -> None:
    """Stop reporting a forwarder."""
    with contextlib.suppress(ValueError):
        _forwarders.remove(forwarder)


def pool_tracking(server: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """Return a cleanup_ctx that reports the app's pool (add it after the pool's context)."""

    async def track(app: web.Application) -> AsyncIterator[None]:
        entry = (server, app[POOL])
        _pools.append(entry)
        yield
        with contextlib.suppress(ValueError):
            _pools.remove(entry)

    return track


def _endpoint(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _refusal(request: web.Request, status: int) -> str:
    if status == 403:
        return "no_certificate" if peer_certificate(request) is None else "unknown_certificate"
    return {400: "invalid", 413: "too_large", 429: "rate_limited", 503: "unavailable"}.get(
        status, "error"
    )


def request_metrics(server: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Return a middleware counting and timing requests by route (put it first)."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            method = request.method if request.method in METHODS else "other"
            endpoint = _endpoint(request)
            HTTP_DURATION.labels(server, method, endpoint).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(server, method, endpoint, str(status)).inc()
            if (method, endpoint) == HEARTBEAT_ENDPOINT:
                if status == 200:
                    HEARTBEATS_ACCEPTED.inc()
                else:
                    HEARTBEATS_REFUSED.labels(_refusal(request, status)).inc()

    return middleware


async def refresh_cluster_counts(pool: asyncpg.Pool, settings: Settings) -> None:
    """Set the cluster gauges from the database (one aggregate query)."""
    stale_after = await fleet_settings.stale_after_seconds(pool, settings)
    rows = await pool.fetch(COUNT_CLUSTERS, stale_after)
    counts = dict.fromkeys(CLUSTER_STATUSES, 0)
    stale = 0
    for row in rows:
        counts[row["status"]] = row["clusters"]
        stale += row["stale"]
    for status, count in counts.items():
        CLUSTERS.labels(status).set(count)
    STALE_CLUSTERS.set(stale)


def scrape_handler(
    settings: Settings, worker: int = 0, ops_ports: Sequence[int] | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Return the ``GET /metrics`` handler of the ops app of worker ``worker``.

    Worker 0 of several serves every worker's metrics, read from the other workers' ops
    ports ``ops_ports`` (:mod:`.worker_metrics`).
    """

    async def scrape(request: web.Request) -> web.Response:
        try:
            await refresh_cluster_counts(request.app[POOL], settings)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            # Every other metric is still worth serving; the cluster gauges keep their values.
            logger.warning("cannot count clusters for /metrics: %s", error)
        body = prometheus_client.generate_latest(REGISTRY)
        if (
            worker == 0
            and ops_ports is not None
            and len(ops_ports) > 1
            and request.query.get("worker") != worker_metrics.OWN_ONLY
        ):
            body = await worker_metrics.unit_metrics(body, ops_ports)
        return web.Response(
            body=body,
            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST},
        )

    return scrape
