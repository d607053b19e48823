"""The Cluster Manager's own metrics on the ops port's /metrics."""

from __future__ import annotations

import pytest
from cluster_manager import tokens
from cluster_manager.fleet import SimulatedCluster
from prometheus_server import scrape, value

STATUS = "/1.0/remote-cluster/status"


@pytest.fixture
async def cluster(server, pool, settings) -> SimulatedCluster:
    token, _ = await tokens.create_token(pool, settings, "metered-1")
    cluster = SimulatedCluster("metered-1", metrics_bytes=1024)
    status, body = await cluster.join(token.encode())
    assert status == 200, body
    return cluster


async def test_heartbeats_are_counted_by_outcome(server, cluster, pool, settings):
    before = await scrape(server.ops_port)
    await cluster.heartbeat()
    await cluster.heartbeat()
    refused, _ = await cluster.heartbeat(b'{"memory_usage": "lots"}', check=False)
    stranger = SimulatedCluster("stranger")
    stranger.use_token(cluster.token_text)
    unknown, _ = await stranger.heartbeat(check=False)

    after = await scrape(server.ops_port)

    assert (refused, unknown) == (400, 403)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mcm_heartbeats_accepted_total") == 2
    assert delta("mcm_heartbeat_write_statements_total") == 2  # one after the other: alone
    assert delta("mcm_heartbeats_refused_total", reason="invalid") == 1
    assert delta("mcm_heartbeats_refused_total", reason="unknown_certificate") == 1
    route = {"server": "connector", "method": "POST", "endpoint": STATUS}
    assert delta("mcm_http_requests_total", **route, code="200") == 2
    assert delta("mcm_http_requests_total", **route, code="400") == 1
    assert delta("mcm_http_requests_total", **route, code="403") == 1
    assert delta("mcm_http_request_duration_seconds_count", **route) == 4
    assert delta("mcm_http_request_duration_seconds_sum", **route) > 0
    # The probe every request starts with (GET / without a client certificate).
    probe = {"server": "connector", "method": "GET", "endpoint": "/", "code": "200"}
    assert delta("mcm_http_requests_total", **probe) == 4


async def test_enrolled_and_stale_clusters_come_from_the_database(server, cluster, pool):
    await cluster.heartbeat()
    fresh = await scrape(server.ops_port)
    assert value(fresh, "mcm_clusters", status="ACTIVE") == 1
    assert value(fresh, "mcm_clusters", status="PENDING_APPROVAL") == 0
    assert value(fresh, "mcm_clusters_stale") == 0

    await pool.execute(
        "UPDATE remote_clusters SET last_status_update_at = now() - interval '1 day'"
    )
    stale = await scrape(server.ops_port)

    assert value(stale, "mcm_clusters_stale") == 1
    assert value(stale, "mcm_clusters", status="ACTIVE") == 1


async def test_pools_and_forwarding_queue_are_reported(server, cluster, settings):
    samples = await scrape(server.ops_port)

    assert value(samples, "mcm_db_pool_max_connections", server="connector") == 10
    assert value(samples, "mcm_db_pool_max_connections", server="ops") == 2
    in_use = value(samples, "mcm_db_pool_connections", server="connector", state="in_use")
    idle = value(samples, "mcm_db_pool_connections", server="connector", state="idle")
    assert in_use + idle >= 1
    assert ("mcm_forward_queue_heartbeats", frozenset()) in samples
    assert value(samples, "process_cpu_seconds_total") > 0
