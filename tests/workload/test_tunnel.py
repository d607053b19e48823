"""The reverse tunnel on one unit, through the real TLS stack, with the daemon's side simulated.

The simulated daemon (:mod:`cluster_manager.fleet.tunnel`) follows canonical/microcloud
``cmd/microcloudd/cluster_manager_tunnel.go`` (read loop lines 203-222, answers lines
225-296) and ``api/types/cluster_manager.go`` lines 109-125 (frame fields).
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from cluster_manager import cluster_listing, clusters
from cluster_manager.errors import ApiError
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.fleet.lxd import InMemoryLXD, Instance
from cluster_manager.fleet.tunnel import SimulatedTunnel, answer
from cluster_manager.tunnel import ENABLE_COMMAND, TUNNEL_HUB
from e2e_fixtures import wait_until
from prometheus_server import scrape, value
from tunnel_fixtures import tunnels_of


async def connected(servers, name: str) -> bool:
    hub = next(r.app[TUNNEL_HUB] for r in servers.runners if TUNNEL_HUB in r.app)
    # Claimed: its row is stored, so the cluster list (read from PostgreSQL) shows it too.
    return any(t.cluster_name == name and t.claimed and not t.closed for t in hub.tunnels.values())


async def test_round_trip_lists_instances_through_real_tls(start_server, enrolled, open_tunnel):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-1")
    lxd = InMemoryLXD([Instance("web", "Running", "container", "m1")])
    await open_tunnel(cluster, lxd=lxd)

    status, envelope = await tunnels_of(servers).request(
        "edge-1", "GET", "/1.0/instances?recursion=1"
    )
    assert envelope is not None

    assert status == 200
    assert envelope["type"] == "sync"
    assert envelope["metadata"] == [
        {
            "name": "web",
            "status": "Running",
            "status_code": 103,
            "type": "container",
            "location": "m1",
            "project": "default",
        }
    ]
    assert lxd.requests == [("GET", "/1.0/instances?recursion=1")]


async def test_state_change_returns_an_operation_that_can_be_waited_for(
    start_server, enrolled, open_tunnel
):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-2")
    lxd = InMemoryLXD([Instance("db", "Running", "virtual-machine", "m2")])
    await open_tunnel(cluster, lxd=lxd)
    tunnels = tunnels_of(servers)

    status, envelope = await tunnels.request(
        "edge-2", "PUT", "/1.0/instances/db/state", json.dumps({"action": "stop"}).encode()
    )
    assert envelope is not None
    assert (status, envelope["type"], envelope["status_code"]) == (202, "async", 100)
    status, waited = await tunnels.request("edge-2", "GET", envelope["operation"] + "/wait")
    assert waited is not None

    assert status == 200
    assert waited["metadata"]["status"] == "Success"
    assert lxd.instances["db"].status == "Stopped"


async def test_lxd_error_is_the_clusters_500_without_a_body(start_server, enrolled, open_tunnel):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-3")
    tunnel = await open_tunnel(cluster)
    tunnel.lxd_down = True

    assert await tunnels_of(servers).request("edge-3", "GET", "/1.0/instances") == (500, None)


async def test_lxd_not_found_keeps_lxds_status_and_envelope(start_server, enrolled, open_tunnel):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-4")
    await open_tunnel(cluster)

    status, envelope = await tunnels_of(servers).request("edge-4", "GET", "/1.0/instances/nope")
    assert envelope is not None

    assert (status, envelope["error"], envelope["error_code"]) == (404, "Instance not found", 404)


async def test_cluster_without_tunnel_is_503_naming_the_command(start_server, enrolled):
    servers = await start_server()
    await enrolled(servers, "edge-5")

    with pytest.raises(ApiError) as refused:
        await tunnels_of(servers).request("edge-5", "GET", "/1.0")

    assert refused.value.status == 503
    assert "tunnel not connected" in refused.value.message
    assert ENABLE_COMMAND == "microcloud cluster-manager set reverse_tunnel true"
    assert ENABLE_COMMAND in refused.value.message


async def test_new_tunnel_replaces_the_old_one(start_server, enrolled, open_tunnel, pool):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-6")
    first = await open_tunnel(cluster)
    second = await open_tunnel(cluster)

    await wait_until(lambda: _true(first.ws.closed))
    status, _ = await tunnels_of(servers).request("edge-6", "GET", "/1.0")

    assert status == 200
    assert (first.answered, second.answered) == (0, 1)
    rows = await pool.fetch("SELECT unit_address FROM remote_cluster_tunnels")
    assert [r["unit_address"] for r in rows] == [servers.settings.internal_address]


async def test_late_notice_of_an_older_claim_leaves_the_newer_tunnel_open(
    start_server, enrolled, open_tunnel, pool
):
    """The cause of test_new_tunnel_replaces_the_old_one's flake (about 1 run in 6).

    The NOTIFY of the first tunnel's claim could arrive after the second tunnel was attached,
    and the hub closed the second; the row, not the notification, now decides.
    """
    servers = await start_server()
    cluster = await enrolled(servers, "edge-6b")
    tunnel = await open_tunnel(cluster)
    await wait_until(lambda: connected(servers, "edge-6b"))
    cluster_id = await pool.fetchval("SELECT cluster_id FROM remote_cluster_tunnels")

    await pool.execute("SELECT pg_notify('remote_cluster_tunnel', $1)", f"{cluster_id} older")
    await asyncio.sleep(1)  # the hub has heard it (and, before the fix, closed the tunnel)
    status, _ = await tunnels_of(servers).request("edge-6b", "GET", "/1.0")

    assert not tunnel.ws.closed
    assert status == 200


async def test_removed_clusters_tunnel_closes_at_once(start_server, enrolled, open_tunnel, pool):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-7")
    tunnel = await open_tunnel(cluster)
    await wait_until(lambda: connected(servers, "edge-7"))

    await clusters.remove_cluster(pool, "edge-7")

    await wait_until(lambda: _true(tunnel.ws.closed), within=5)
    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_tunnels") == 0


async def test_unenrolled_certificate_cannot_open_a_tunnel(start_server, enrolled):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-8")
    stranger = SimulatedCluster("stranger")
    stranger.use_token(cluster.token_text)
    tunnel = SimulatedTunnel(stranger)

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await tunnel.connect()
    await tunnel.close()

    assert refused.value.status == 403


async def test_plain_get_on_the_tunnel_path_is_refused(start_server, enrolled):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-9")

    status, body = await cluster.request("GET", "/1.0/remote-cluster/ws", check=False)

    assert status == 400
    assert "WebSocket" in json.loads(body)["error"]


async def test_tunnel_outlives_the_connection_age_cap(start_server, enrolled, open_tunnel):
    servers = await start_server(connection_max_age=1.5)
    cluster = await enrolled(servers, "edge-10")
    await open_tunnel(cluster)
    await asyncio.sleep(3)  # twice the cap

    status, _ = await tunnels_of(servers).request("edge-10", "GET", "/1.0")

    assert status == 200


async def test_answer_to_unknown_id_is_counted_and_dropped(start_server, enrolled, open_tunnel):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-11")
    tunnel = await open_tunnel(cluster)
    await wait_until(lambda: connected(servers, "edge-11"))
    hub = next(r.app[TUNNEL_HUB] for r in servers.runners if TUNNEL_HUB in r.app)

    await tunnel.ws.send_str(answer("no-such-request", 200, b"{}"))
    await wait_until(lambda: _true(next(iter(hub.tunnels.values())).unknown_answers == 1))
    status, _ = await tunnels_of(servers).request("edge-11", "GET", "/1.0")

    assert status == 200
    assert not next(iter(hub.tunnels.values())).pending


async def test_non_json_frame_fails_the_waiting_request_and_drops_the_tunnel(
    start_server, enrolled, open_tunnel, pool
):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-12")
    tunnel = await open_tunnel(cluster, answer_delay=5)
    waiting = asyncio.create_task(tunnels_of(servers).request("edge-12", "GET", "/1.0"))
    await asyncio.sleep(0.3)

    await tunnel.ws.send_str("this is not json")

    with pytest.raises(ApiError) as broken:
        await asyncio.wait_for(waiting, 3)
    assert broken.value.status == 502
    assert "not valid JSON" in broken.value.message
    await wait_until(lambda: _no_rows(pool))


async def test_oversized_frame_fails_the_request_and_drops_the_tunnel(
    start_server, enrolled, open_tunnel, pool
):
    servers = await start_server(tunnel_max_frame_bytes=8192)
    cluster = await enrolled(servers, "edge-13")
    await open_tunnel(cluster, lxd=InMemoryLXD.sample("edge-13", count=200))

    with pytest.raises(ApiError) as broken:
        await tunnels_of(servers).request("edge-13", "GET", "/1.0/instances?recursion=1")

    assert broken.value.status == 502
    await wait_until(lambda: _no_rows(pool))


async def test_slow_cluster_times_out_with_504_and_leaves_nothing_pending(
    start_server, enrolled, open_tunnel
):
    servers = await start_server(tunnel_request_timeout=0.5)
    cluster = await enrolled(servers, "edge-14")
    tunnel = await open_tunnel(cluster, answer_delay=1.0)
    hub = next(r.app[TUNNEL_HUB] for r in servers.runners if TUNNEL_HUB in r.app)

    with pytest.raises(ApiError) as late:
        await tunnels_of(servers).request("edge-14", "GET", "/1.0")

    assert late.value.status == 504
    live = next(iter(hub.tunnels.values()))
    assert live.pending == {}
    await wait_until(lambda: _true(live.unknown_answers == 1))  # the late answer, dropped
    tunnel.answer_delay = 0
    assert (await tunnels_of(servers).request("edge-14", "GET", "/1.0"))[0] == 200


async def test_dead_cluster_is_closed_by_the_keepalive(start_server, enrolled, open_tunnel, pool):
    servers = await start_server(tunnel_ping_interval=0.3, tunnel_pong_timeout=0.3)
    cluster = await enrolled(servers, "edge-15")
    tunnel = await open_tunnel(cluster)
    await wait_until(lambda: connected(servers, "edge-15"))
    await asyncio.sleep(1)  # pings answered: still connected
    assert await connected(servers, "edge-15")

    tunnel.stop_answering()

    await wait_until(lambda: _no_rows(pool), within=5)
    with pytest.raises(ApiError) as refused:
        await tunnels_of(servers).request("edge-15", "GET", "/1.0")
    assert refused.value.status == 503


async def test_requests_queue_in_order_up_to_the_bound(start_server, enrolled, open_tunnel):
    servers = await start_server(tunnel_max_in_flight=2)
    cluster = await enrolled(servers, "edge-16")
    lxd = InMemoryLXD([Instance("a"), Instance("b"), Instance("c")])
    await open_tunnel(cluster, lxd=lxd, answer_delay=0.3)
    tunnels = tunnels_of(servers)

    results = await asyncio.gather(
        *(tunnels.request("edge-16", "GET", f"/1.0/instances/{n}") for n in "abc"),
        return_exceptions=True,
    )

    refused = [r for r in results if isinstance(r, ApiError)]
    answered = [r for r in results if isinstance(r, tuple)]
    assert [r.status for r in refused] == [429]
    assert [status for status, _ in answered] == [200, 200]
    assert sorted(e["metadata"]["name"] for _, e in answered if e) == sorted(
        p[-1] for _, p in lxd.requests
    )


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/2.0/instances"), ("TRACE", "/1.0"), ("GET", "/1.0/\r\nX: y")]
)
async def test_requests_the_daemon_would_refuse_are_refused_here(
    start_server, enrolled, method, path
):
    servers = await start_server()
    await enrolled(servers, "edge-17")

    with pytest.raises(ApiError) as refused:
        await tunnels_of(servers).request("edge-17", method, path)

    assert refused.value.status == 400


async def _true(value: bool) -> bool:
    return value


async def _no_rows(pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM remote_cluster_tunnels") == 0


async def test_cluster_list_and_detail_show_whether_the_tunnel_is_connected(
    start_server, enrolled, open_tunnel, pool
):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-18")
    await enrolled(servers, "edge-19")
    tunnel = await open_tunnel(cluster)
    await wait_until(lambda: connected(servers, "edge-18"))

    page = await cluster_listing.list_cluster_page(
        pool, servers.settings, cluster_listing.ClusterQuery()
    )
    shown = {c.name: c.tunnel_connected for c in page.clusters}
    detail = await cluster_listing.get_cluster_view(pool, servers.settings, "edge-18")
    await tunnel.close()
    await wait_until(lambda: _no_rows(pool))
    after = await cluster_listing.get_cluster_view(pool, servers.settings, "edge-18")

    assert shown == {"edge-18": True, "edge-19": False}
    assert detail.tunnel_connected is True
    assert detail.tunnel_connected_at is not None
    assert (after.tunnel_connected, after.tunnel_connected_at) == (False, None)


async def test_metrics_count_open_tunnels_and_requests_by_outcome(
    start_server, enrolled, open_tunnel
):
    servers = await start_server()
    cluster = await enrolled(servers, "edge-m1")
    await enrolled(servers, "edge-m2")  # without a tunnel
    before = await scrape(servers.ops_port)
    tunnel = await open_tunnel(cluster)
    await wait_until(lambda: connected(servers, "edge-m1"))
    tunnels = tunnels_of(servers)

    await tunnels.request("edge-m1", "GET", "/1.0")
    await tunnels.request("edge-m1", "GET", "/1.0")
    with pytest.raises(ApiError):
        await tunnels.request("edge-m2", "GET", "/1.0")
    with pytest.raises(ApiError):
        await tunnels.request("nobody", "GET", "/1.0")
    opened = await scrape(servers.ops_port)
    await tunnel.close()

    async def none_open() -> bool:
        return value(await scrape(servers.ops_port), "mcm_tunnels_open") == 0

    await wait_until(none_open)

    def delta(outcome: str) -> float:
        name = "mcm_tunnel_requests_total"
        return value(opened, name, outcome=outcome) - value(before, name, outcome=outcome)

    assert value(before, "mcm_tunnels_open") == 0
    assert value(opened, "mcm_tunnels_open") == 1
    assert [delta(o) for o in ("answered", "not_connected", "refused", "timeout")] == [2, 1, 1, 0]
