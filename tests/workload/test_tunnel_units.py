"""A request through a tunnel that lives on another unit: two servers on one PostgreSQL.

Unit A is a ``cluster-manager serve`` process holding the cluster's tunnel; unit B runs in the
test's event loop and has no tunnel, so its request goes over the signed unit-to-unit channel.
The daemon's side is simulated after canonical/microcloud ``cmd/microcloudd/
cluster_manager_tunnel.go`` lines 203-296.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import aiohttp
import msgspec
import pytest
from cluster_manager import clusters, tokens
from cluster_manager.errors import ApiError
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.fleet.lxd import InMemoryLXD, Instance
from cluster_manager.fleet.tunnel import SimulatedTunnel
from cluster_manager.tunnel import TUNNELS, Tunnels, channel
from conftest import free_port
from e2e_fixtures import wait_for_tunnel_rows, wait_until
from support import write_config


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "internal.key"
    path.write_text(os.urandom(32).hex())
    return path


@pytest.fixture
async def two_units(server_process, start_server, key_file):
    """Unit A (a process) and unit B (in this loop), sharing the database and the key."""
    port_a = free_port()
    unit_a = server_process(internal_key_file=str(key_file), internal_port=port_a)
    unit_b = await start_server(internal_key_file=str(key_file), internal_port=free_port())
    return unit_a, unit_b


@pytest.fixture
async def tunnel_on_a(two_units, pool):
    unit_a, _ = two_units
    token, _ = await tokens.create_token(pool, unit_a.settings, "far-1")
    cluster = SimulatedCluster("far-1")
    await cluster.join(token.encode())  # the token's address is unit A's connector
    lxd = InMemoryLXD([Instance("web", "Running", "container", "m1")])
    tunnel = SimulatedTunnel(cluster, lxd)
    await tunnel.connect()
    tunnel.start()

    await wait_for_tunnel_rows(pool, 1)
    yield tunnel
    await tunnel.close()


def tunnels_of(servers) -> Tunnels:
    return next(r.app[TUNNELS] for r in servers.runners if TUNNELS in r.app)


async def test_request_on_the_unit_without_the_tunnel_reaches_the_cluster(
    two_units, tunnel_on_a, pool
):
    unit_a, unit_b = two_units

    status, envelope = await tunnels_of(unit_b).request("far-1", "GET", "/1.0/instances/web")
    assert envelope is not None

    assert (status, envelope["metadata"]["location"]) == (200, "m1")
    assert tunnel_on_a.lxd.requests == [("GET", "/1.0/instances/web")]
    holder = await pool.fetchval("SELECT unit_address FROM remote_cluster_tunnels")
    assert holder == unit_a.settings.internal_address != unit_b.settings.internal_address


async def test_state_change_through_the_other_unit_returns_the_operation(two_units, tunnel_on_a):
    _, unit_b = two_units

    status, envelope = await tunnels_of(unit_b).request(
        "far-1", "PUT", "/1.0/instances/web/state", b'{"action": "freeze"}'
    )
    assert envelope is not None

    assert (status, envelope["type"]) == (202, "async")
    assert tunnel_on_a.lxd.instances["web"].status == "Frozen"


async def test_credentials_reach_the_cluster_through_the_other_unit_sealed(
    two_units, tunnel_on_a, key_file
):
    _, unit_b = two_units
    headers = {"Authorization": "Bearer user-token-1"}

    status, _ = await tunnels_of(unit_b).request(
        "far-1", "GET", "/1.0/instances/web", headers=headers
    )

    assert status == 200
    assert tunnel_on_a.authorizations == ["Bearer user-token-1"]
    # On the plain-HTTP channel the token is sealed, and bound to its call.
    key = bytes.fromhex(key_file.read_text())
    call = channel.Call("GET", "/1.0/instances/web", None, headers)
    sealed = channel.seal_headers(key, "far-1", call)
    assert sealed is not None
    assert b"user-token-1" not in sealed
    asked = channel.UnitRequest("far-1", "GET", "/1.0/instances/web", None, sealed)
    assert channel.open_headers(key, asked) == headers
    for other in (
        channel.UnitRequest("far-1", "DELETE", "/1.0/instances/web", None, sealed),
        channel.UnitRequest("far-2", "GET", "/1.0/instances/web", None, sealed),
    ):
        with pytest.raises(ApiError, match="credentials: cannot be opened"):
            channel.open_headers(key, other)


async def test_lxd_error_through_the_other_unit_is_500_without_body(two_units, tunnel_on_a):
    _, unit_b = two_units
    tunnel_on_a.lxd_down = True

    assert await tunnels_of(unit_b).request("far-1", "GET", "/1.0") == (500, None)


async def test_tunnel_closing_on_a_makes_b_answer_503(two_units, tunnel_on_a, pool):
    _, unit_b = two_units
    await tunnel_on_a.close()

    await wait_for_tunnel_rows(pool, 0)
    with pytest.raises(ApiError) as refused:
        await tunnels_of(unit_b).request("far-1", "GET", "/1.0")
    assert refused.value.status == 503
    assert "microcloud cluster-manager set reverse_tunnel true" in refused.value.message


@pytest.mark.parametrize("forgery", ["wrong key", "old timestamp", "replayed"])
async def test_unit_channel_refuses_unsigned_old_or_replayed_requests(
    two_units, tunnel_on_a, key_file, forgery
):
    unit_a, _ = two_units
    key = bytes.fromhex(key_file.read_text())
    path = channel.PATH.format(cluster_id=1)
    body = b'{"cluster": "far-1", "method": "GET", "path": "/1.0", "body": null}'
    stamp = str(int(time.time()) - (120 if forgery == "old timestamp" else 0))
    nonce = os.urandom(16).hex()
    signing_key = os.urandom(32) if forgery == "wrong key" else key
    headers = {
        channel.TIME_HEADER: stamp,
        channel.NONCE_HEADER: nonce,
        channel.SIGNATURE_HEADER: channel.sign(signing_key, stamp, nonce, "POST", path, body),
    }
    url = f"http://{unit_a.settings.internal_address}{path}"
    async with aiohttp.ClientSession() as http:
        if forgery == "replayed":
            async with http.post(url, data=body, headers=headers) as first:
                assert first.status == 200
        async with http.post(url, data=body, headers=headers) as response:
            answer = await response.json()

    assert response.status == 401
    assert answer["error"] == "unit-to-unit request not authenticated"
    assert tunnel_on_a.lxd.requests == ([("GET", "/1.0")] if forgery == "replayed" else [])


async def test_new_tunnel_on_the_other_unit_closes_the_old_one(two_units, tunnel_on_a, pool):
    _, unit_b = two_units
    cluster = tunnel_on_a.cluster
    to_b = msgspec.structs.replace(cluster.token, addresses=unit_b.settings.connector_addresses)
    same_cluster_via_b = SimulatedCluster(cluster.name, identity=cluster.identity)
    same_cluster_via_b.use_token(to_b.encode())
    second = SimulatedTunnel(same_cluster_via_b, tunnel_on_a.lxd)
    await second.connect()
    second.start()
    try:

        async def first_closed() -> bool:
            return tunnel_on_a.ws.closed

        await wait_until(first_closed, within=5)
        holder = await pool.fetchval("SELECT unit_address FROM remote_cluster_tunnels")
        status, _ = await tunnels_of(unit_b).request("far-1", "GET", "/1.0")
    finally:
        await second.close()

    assert holder == unit_b.settings.internal_address
    assert status == 200
    assert (tunnel_on_a.answered, second.answered) == (0, 1)


async def test_cli_reads_the_clusters_lxd_through_the_unit_holding_the_tunnel(
    two_units, tunnel_on_a, tmp_path
):
    unit_a, _ = two_units
    config = write_config(tmp_path / "cli.toml", unit_a.settings)  # the tunnel's own unit

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cluster_manager.cli", "--config", str(config),
        "cluster", "lxd", "far-1", "instances?recursion=1",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()

    assert process.returncode == 0, err.decode()
    assert [i["name"] for i in json.loads(out)["metadata"]] == ["web"]
    assert tunnel_on_a.lxd.requests == [("GET", "/1.0/instances?recursion=1")]


async def run_cli(config, *arguments: str) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cluster_manager.cli", "--config", str(config), *arguments,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err


async def test_cli_lists_instances_and_changes_state_through_the_holding_unit(
    two_units, tunnel_on_a, tmp_path, pool
):
    unit_a, _ = two_units
    config = write_config(tmp_path / "cli.toml", unit_a.settings)

    code, out, err = await run_cli(config, "cluster", "instances", "far-1", "--format", "json")
    assert code == 0, err.decode()
    [listed] = json.loads(out)
    assert (listed["name"], listed["status"], listed["location"]) == ("web", "Running", "m1")

    code, out, err = await run_cli(
        config, "cluster", "instance-state", "far-1", "web", "stop", "--format", "json"
    )
    assert code == 0, err.decode()
    assert json.loads(out)["result"] == "success"
    assert tunnel_on_a.lxd.instances["web"].status == "Stopped"
    row = await pool.fetchrow(
        "SELECT subject, method, status FROM audit_log WHERE target = 'cluster'"
    )
    assert tuple(row) == ("cli", "PUT", 202)


async def test_cli_state_change_of_a_missing_instance_fails_with_lxds_message(
    two_units, tunnel_on_a, tmp_path
):
    unit_a, _ = two_units
    config = write_config(tmp_path / "cli.toml", unit_a.settings)

    code, _, err = await run_cli(config, "cluster", "instance-state", "far-1", "nope", "start")

    assert code == 1
    assert "Instance not found" in err.decode()
    assert tunnel_on_a.lxd.state_requests == []


async def test_removal_closes_the_tunnel_on_the_unit_holding_it(two_units, tunnel_on_a, pool):
    _, unit_b = two_units
    await clusters.remove_cluster(pool, "far-1")  # as unit B's API would: one statement

    async def closed() -> bool:
        return tunnel_on_a.ws.closed

    await wait_until(closed, within=5)
    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_tunnels") == 0
    with pytest.raises(ApiError) as refused:
        await tunnels_of(unit_b).request("far-1", "GET", "/1.0")
    assert refused.value.status == 404


UNIT_ALIVE = "SELECT alive_at FROM remote_cluster_tunnel_units WHERE unit_address = $1"


async def test_a_dead_units_tunnels_stop_counting_as_connected(
    server_process, start_server, key_file, pool
):
    liveness = 0.3  # every unit refreshes its rows this often; 3 missed refreshes expire them
    unit_a = server_process(
        internal_key_file=str(key_file),
        internal_port=free_port(),
        tunnel_liveness_interval=liveness,
    )
    unit_b = await start_server(
        internal_key_file=str(key_file),
        internal_port=free_port(),
        tunnel_liveness_interval=liveness,
    )
    token, _ = await tokens.create_token(pool, unit_a.settings, "far-2")
    cluster = SimulatedCluster("far-2")
    await cluster.join(token.encode())
    tunnel = SimulatedTunnel(cluster, InMemoryLXD([]))
    await tunnel.connect()
    tunnel.start()
    try:
        await wait_for_tunnel_rows(pool, 1)
        first_seen = await pool.fetchval(UNIT_ALIVE, unit_a.settings.internal_address)
        await asyncio.sleep(6 * liveness)  # twice the expiry: a live unit keeps its rows
        assert await pool.fetchval(UNIT_ALIVE, unit_a.settings.internal_address) > first_seen
        assert (await tunnels_of(unit_b).request("far-2", "GET", "/1.0"))[0] == 200

        assert unit_a.process is not None
        unit_a.process.kill()  # dies without releasing anything, and is not restarted
        unit_a.process.wait(10)

        await wait_for_tunnel_rows(pool, 0, within=10)  # deleted by unit B
        assert await pool.fetchval(UNIT_ALIVE, unit_a.settings.internal_address) is None
        with pytest.raises(ApiError) as refused:
            await tunnels_of(unit_b).request("far-2", "GET", "/1.0")
    finally:
        await tunnel.close()

    assert refused.value.status == 503
    assert "has no reverse tunnel" in refused.value.message
    assert "cannot be reached" not in refused.value.message


async def test_a_unit_closes_a_tunnel_whose_row_is_gone(start_server, open_tunnel, pool):
    servers = await start_server(tunnel_liveness_interval=0.2)
    token, _ = await tokens.create_token(pool, servers.settings, "far-3")
    cluster = SimulatedCluster("far-3")
    await cluster.join(token.encode())
    tunnel = await open_tunnel(cluster)

    await wait_for_tunnel_rows(pool, 1)
    await pool.execute("DELETE FROM remote_cluster_tunnels")  # e.g. expired by another unit

    async def closed() -> bool:
        return tunnel.ws.closed

    await wait_until(closed, within=5)  # the cluster dials again and is recorded anew
