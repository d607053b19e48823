"""Heartbeats: stored by one write, refused for unknown, removed or malformed senders."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from datetime import UTC, datetime, timedelta
from random import Random

import aiohttp
import msgspec
import pytest
from aiohttp import web
from cluster_manager import clusters, tokens
from cluster_manager.certificates import certificate_file_fingerprint
from cluster_manager.connector.limits import ConnectorLimits
from cluster_manager.envelope import sync_response
from cluster_manager.fleet import LeakingAnswerError, SimulatedCluster
from cluster_manager.fleet.cluster import JOIN_PATH, STATUS_PATH
from cluster_manager.join_token import JoinToken
from cluster_manager.metrics import REGISTRY
from cluster_manager.mtls import server_context
from cluster_manager.settings import Settings
from connector_support import raw_cluster_request
from msgspec import to_builtins
from support import table_rows


def error_of(body: bytes) -> str:
    envelope = json.loads(body)
    assert envelope["type"] == "error", envelope
    return envelope["error"]


@pytest.fixture
async def enrol(pool):
    async def enrol(settings, name: str = "edge-1") -> SimulatedCluster:
        token, _ = await tokens.create_token(pool, settings, name)
        cluster = SimulatedCluster(name)
        await cluster.join(token.encode())
        return cluster

    return enrol


@pytest.fixture
async def cluster(server, settings, enrol) -> SimulatedCluster:
    return await enrol(settings)


async def test_heartbeat_is_stored_with_the_payload_values(cluster, pool):
    payload = cluster.status.next()

    status, body = await cluster.heartbeat(payload)

    assert status == 200, body
    assert body == b""
    shown = to_builtins(await clusters.get_cluster(pool, "edge-1"))
    for key in (
        "memory_total_amount",
        "memory_usage",
        "cpu_total_count",
        "ui_url",
        "cpu_load_1",
        "cpu_load_5",
        "cpu_load_15",
    ):
        assert shown[key] == payload[key], key
    for key in ("instance_statuses", "member_statuses", "ceph_statuses"):
        stored = {(s["status"], s["count"]) for s in shown[key]}
        assert stored == {(s["status"], s["count"]) for s in payload[key] or []}, key
    assert shown["storage_pool_usages"] == (payload["storage_pool_usages"] or [])
    assert shown["instance_count"] == sum(s["count"] for s in payload["instance_statuses"] or [])
    assert shown["member_count"] == sum(s["count"] for s in payload["member_statuses"] or [])
    assert [m["member"] for m in shown["server_metrics"]] == [
        m["member"] for m in payload["server_metrics"]
    ]
    assert shown["last_status_update_at"] is not None


async def test_next_heartbeat_overwrites_the_details(cluster, pool):
    await cluster.heartbeat()
    second = cluster.status.next()
    second["memory_usage"] = 12345
    await cluster.heartbeat(second)

    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_details") == 1
    assert to_builtins(await clusters.get_cluster(pool, "edge-1"))["memory_usage"] == 12345


async def test_go_nil_slices_are_accepted_as_empty(cluster, pool):
    payload = cluster.status.next()
    for key in (
        "ceph_statuses",
        "instance_statuses",
        "storage_pool_usages",
        "server_metrics",
        "member_statuses",
    ):
        payload[key] = None

    status, body = await cluster.heartbeat(payload)

    assert status == 200, body
    shown = to_builtins(await clusters.get_cluster(pool, "edge-1"))
    assert shown["instance_statuses"] == []
    assert shown["instance_count"] == 0


async def test_a_status_sent_twice_is_stored_once_with_the_counts_summed(cluster, pool):
    payload = cluster.status.next()
    payload["instance_statuses"] = [
        {"status": "Running", "count": 2},
        {"status": "Stopped", "count": 1},
        {"status": "Running", "count": 3},
    ]

    status, body = await cluster.heartbeat(payload)

    assert status == 200, body
    shown = to_builtins(await clusters.get_cluster(pool, "edge-1"))
    assert shown["instance_statuses"] == [
        {"status": "Running", "count": 5},
        {"status": "Stopped", "count": 1},
    ]
    assert shown["instance_count"] == 6


async def test_unknown_certificate_is_refused(cluster, pool):
    stranger = SimulatedCluster("stranger")
    stranger.use_token(cluster.token_text)
    before = await table_rows(pool)

    status, body = await stranger.heartbeat(check=False)

    assert status == 403
    assert error_of(body) == "unknown cluster certificate"
    assert await table_rows(pool) == before


async def test_heartbeat_without_client_certificate_is_refused(server, settings):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", server.connector_port, ssl=context)
    writer.write(
        b"POST /1.0/remote-cluster/status HTTP/1.1\r\nHost: remote\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    response = await reader.read()
    writer.close()

    assert response.startswith(b"HTTP/1.1 403")
    assert b"a client certificate is required" in response


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"memory_usage": "lots"}, "memory_usage: expected int, got str"),
        ({"memory_total_amount": -1}, "memory_total_amount: expected int ≥ 0"),
        ({"cpu_load_1": "fast"}, "cpu_load_1: expected a decimal number in a string"),
        ({"cpu_load_5": "nan"}, "cpu_load_5: expected a decimal number in a string"),
        ({"instance_statuses": "Running"}, "instance_statuses: expected array | null, got str"),
        (
            {"instance_statuses": [{"status": "Running", "count": -3}]},
            "instance_statuses[0].count: expected int ≥ 0",
        ),
        (
            {"member_statuses": [{"status": "x" * 65, "count": 1}]},
            "member_statuses[0].status: expected str of length ≤ 64",
        ),
        (
            {"storage_pool_usages": [{"name": "p", "member": "m", "total": 1.5, "usage": 0}]},
            "storage_pool_usages[0].total: expected int, got float",
        ),
        (
            {"server_metrics": [{"member": "m", "metrics": 7, "service": "LXD"}]},
            "server_metrics[0].metrics: expected str, got int",
        ),
        ({"ui_url": "javascript:alert(1)"}, "ui_url: must be an http or https URL"),
        (
            {"ceph_statuses": [{"status": "ONLINE", "count": 1}] * 65},
            "ceph_statuses: expected array of length ≤ 64",
        ),
        ({"cpu_total_count": True}, "cpu_total_count: expected int, got bool"),
        ({"cpu_load_15": 0.42}, "cpu_load_15: expected str, got float"),
        ({"ui_url": None}, "ui_url: expected str, got null"),
        (
            {"instance_statuses": [{"status": "Run\x00", "count": 1}]},
            "instance_statuses[0].status: must not contain NUL",
        ),
    ],
)
async def test_malformed_payload_is_refused_naming_the_field(cluster, pool, change, field):
    await cluster.heartbeat()
    before = await table_rows(pool)
    payload = {**cluster.status.next(), **change}

    status, body = await cluster.heartbeat(payload, check=False)

    assert status == 400, body
    assert field in error_of(body)
    assert await table_rows(pool) == before


@pytest.mark.parametrize("key", ["memory_usage", "instance_statuses", "cpu_load_1", "ui_url"])
async def test_heartbeat_missing_a_key_of_the_contract_is_refused(cluster, pool, key):
    payload = cluster.status.next()
    del payload[key]
    before = await table_rows(pool)

    status, body = await cluster.heartbeat(payload, check=False)

    assert status == 400, body
    assert error_of(body) == f"{key}: required"
    assert await table_rows(pool) == before


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[1, 2]", b"\xff\xfe", b'"text"', b'{"cpu_load_1": 3}']
)
async def test_malformed_json_is_refused(cluster, pool, body):
    before = await table_rows(pool)

    status, response = await cluster.heartbeat(body, check=False)

    assert status == 400, response
    assert await table_rows(pool) == before


async def test_oversized_heartbeat_is_refused_with_413(start_server, pool, enrol):
    servers = await start_server(max_heartbeat_bytes=64 * 1024)
    cluster = await enrol(servers.settings)
    payload = cluster.status.next()
    payload["server_metrics"] = [{"member": "m", "service": "LXD", "metrics": "x" * 70_000}]

    status, body = await cluster.heartbeat(payload, check=False)

    assert status == 413, body
    assert "larger than 65536 bytes" in error_of(body)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM remote_cluster_details WHERE heartbeat_at IS NOT NULL"
        )
        == 0
    )


async def test_real_heartbeat_with_large_metrics_fits_the_default_limit(
    server, settings, pool, enrol
):
    cluster = SimulatedCluster("big", metrics_bytes=400 * 1024)
    token, _ = await tokens.create_token(pool, settings, "big")
    await cluster.join(token.encode())

    status, body = await cluster.heartbeat()

    assert status == 200, body


async def test_heartbeats_are_rate_limited_per_cluster(start_server, enrol):
    servers = await start_server(heartbeat_rate_per_minute=1, heartbeat_burst=2)
    noisy = await enrol(servers.settings, "noisy")
    quiet = await enrol(servers.settings, "quiet")

    statuses = [(await noisy.heartbeat(check=False))[0] for _ in range(3)]
    status, body = await noisy.heartbeat(check=False)

    assert statuses == [200, 200, 429]
    assert status == 429
    assert "too many heartbeats" in error_of(body)
    assert (await quiet.heartbeat(check=False))[0] == 200


async def test_rate_limited_response_says_when_to_retry(start_server, enrol):
    servers = await start_server(heartbeat_rate_per_minute=1, heartbeat_burst=1)
    cluster = await enrol(servers.settings)
    await cluster.heartbeat()
    from cluster_manager.fleet import client  # the raw response, headers included

    token = cluster.token
    address, der = await client.fetch_certificate(token.addresses, 5)
    context = cluster.identity.pinned_context(der)
    host, port = client.split_address(address)
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    writer.write(
        b"POST /1.0/remote-cluster/status HTTP/1.1\r\nHost: remote\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    response = await reader.read()
    writer.close()

    assert response.startswith(b"HTTP/1.1 429")
    retry_after = [line for line in response.split(b"\r\n") if line.startswith(b"Retry-After")]
    assert len(retry_after) == 1
    assert 1 <= int(retry_after[0].split(b":")[1]) <= 60


@pytest.mark.parametrize(
    ("method", "path"), [("POST", STATUS_PATH), ("DELETE", JOIN_PATH)], ids=["status", "leave"]
)
async def test_success_is_an_empty_200_that_closes_the_connection(cluster, method, path):
    """The daemon never reads a 200's body: any body would pin one of its sockets (issue 12).

    canonical/microcloud f26e73c, client/cluster_manager_client.go:119-143 (sendRequest): a new
    http.Transport per request, and the body is read only when the status is not 200.
    """
    body = cluster.status.next_body() if method == "POST" else b""

    status, headers, rest = await raw_cluster_request(cluster, method, path, body)

    assert status == 200
    assert headers["connection"].lower() == "close"
    assert headers["content-length"] == "0"
    assert rest == b""


@pytest.mark.parametrize(
    "answer",
    [
        lambda: sync_response({}),  # a body: the daemon would never read or close it
        lambda: web.Response(status=200),  # empty, but the connection stays open
    ],
    ids=["body", "keep-alive"],
)
async def test_simulated_daemon_detects_an_answer_that_would_leak_a_socket(tls_dir, answer):
    async def handle(_request: web.Request) -> web.Response:
        return answer()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    cert, key = str(tls_dir / "connector.crt"), str(tls_dir / "connector.key")
    site = web.TCPSite(
        runner, "127.0.0.1", 0, ssl_context=server_context(cert, key, request_client_cert=True)
    )
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cluster = SimulatedCluster("edge-1")
    cluster.use_token(
        JoinToken(
            secret="s",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            addresses=(f"127.0.0.1:{port}",),
            server_name="edge-1",
            fingerprint=certificate_file_fingerprint(cert),
        ).encode()
    )
    try:
        with pytest.raises(LeakingAnswerError):
            await cluster.heartbeat()
    finally:
        await runner.cleanup()


async def test_errors_keep_their_json_body(cluster):
    status, headers, rest = await raw_cluster_request(cluster, "POST", STATUS_PATH, b"{")

    assert status == 400
    assert error_of(rest) == "body: not valid JSON"
    assert headers["connection"].lower() == "close"


async def test_leave_right_after_a_burst_of_heartbeats_succeeds(start_server, enrol, pool):
    """Issue 12: the leave shared the heartbeat bucket, and was refused after a burst."""
    servers = await start_server(heartbeat_rate_per_minute=1, heartbeat_burst=2)
    cluster = await enrol(servers.settings)
    statuses = [(await cluster.heartbeat(check=False))[0] for _ in range(3)]

    status, body = await cluster.leave(check=False)

    assert statuses == [200, 200, 429]
    assert status == 200, body
    assert await pool.fetchval("SELECT count(*) FROM remote_clusters") == 0


def refused_count(reason: str) -> float:
    return REGISTRY.get_sample_value("mcm_connector_rate_limited_total", {"reason": reason}) or 0


async def test_refusals_are_logged_once_per_cluster_and_counted_by_reason(
    start_server, enrol, caplog
):
    servers = await start_server(heartbeat_rate_per_minute=1, heartbeat_burst=1)
    noisy = await enrol(servers.settings, "noisy")
    other = await enrol(servers.settings, "other")
    counted = refused_count("heartbeat")
    caplog.set_level(logging.WARNING, logger="cluster_manager.connector.limits")

    statuses = [(await noisy.heartbeat(check=False))[0] for _ in range(5)]
    statuses += [(await other.heartbeat(check=False))[0] for _ in range(3)]

    assert statuses == [200, 429, 429, 429, 429, 200, 429, 429]
    assert refused_count("heartbeat") - counted == 6
    logged = [r.getMessage() for r in caplog.records if "rate limited" in r.getMessage()]
    assert len(logged) == 2, logged  # one line per cluster, not one per refusal
    assert any(noisy.fingerprint in line and "cluster noisy" in line for line in logged), logged
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{servers.settings.ops_port}/metrics"
        async with session.get(url) as response:
            exposed = await response.text()
    assert 'mcm_connector_rate_limited_total{reason="heartbeat"}' in exposed


def test_a_cluster_reporting_every_10_seconds_is_never_refused(monkeypatch):
    """Default sizing: 10 s with jitter, a restart, and two senders during a leader change.

    canonical/microcloud f26e73c, cmd/microcloudd/cluster_manager_task.go:24-37 and :81-95:
    every member runs the ticker (reset to the stored update_interval_seconds after each send)
    and sends only while it sees itself as the database leader, so two members can send while
    the leader changes.
    """
    clock = [0.0]
    monkeypatch.setattr("cluster_manager.ratelimit.time.monotonic", lambda: clock[0])
    limits = ConnectorLimits.from_settings(Settings())
    random = Random(10)  # noqa: S311 - jitter, not a secret
    sent_at = []
    t = 0.0
    while t < 86400:  # a day at 10 s, each send up to 3 s late or early
        sent_at.append(t + random.uniform(-3, 3))
        t += 10
    sent_at += [3600 + 10 * n + 5 for n in range(60)]  # ten minutes with a second sender
    sent_at += [7200 + n for n in range(3)]  # a restart sends at once, twice more
    for moment in sorted(sent_at):
        clock[0] = moment
        limits.heartbeat.check("fingerprint", "heartbeats")  # raises TooManyRequests if refused


async def test_cluster_that_leaves_is_gone_and_refused(cluster, pool):
    await cluster.heartbeat()

    status, body = await cluster.leave()

    assert status == 200, body
    assert await pool.fetchval("SELECT count(*) FROM remote_clusters") == 0
    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_details") == 0
    assert (await cluster.heartbeat(check=False))[0] == 403


async def test_removed_cluster_is_refused_by_other_unit(server_process, pool, enrol):
    unit_a = server_process()
    unit_b = server_process()
    cluster = await enrol(unit_a.settings)
    # Both units have seen (and cached) the cluster.
    for unit in (unit_a, unit_b):
        cluster.token = msgspec.structs.replace(
            cluster.token, addresses=unit.settings.connector_addresses
        )
        assert (await cluster.heartbeat())[0] == 200

    await clusters.remove_cluster(pool, "edge-1")  # what unit A's API and CLI call

    status, body = await cluster.heartbeat(check=False)  # at once, through unit B
    assert status == 403, body
    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_details") == 0


async def test_removed_and_re_enrolled_cluster_reports_again(server, settings, pool, cluster):
    await cluster.heartbeat()
    await clusters.remove_cluster(pool, "edge-1")
    token, _ = await tokens.create_token(pool, settings, "edge-1")
    await cluster.join(token.encode())

    status, body = await cluster.heartbeat()

    assert status == 200, body
    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_details") == 1
