"""A tunnel through the real Traefik passthrough, used from the Management API of both units.

The deployment is ``e2e_fixtures.deploy``: two ``cluster-manager serve`` processes on one
PostgreSQL behind Traefik with the charm's routes. The cluster dials
``wss://connector.mcm.test:<port>/1.0/remote-cluster/ws`` as the daemon does
(canonical/microcloud ``client/cluster_manager_client.go`` lines 89-107): Traefik hands the
TLS connection to one unit; a request to either unit reaches the cluster.
"""

from __future__ import annotations

import json

import pytest
from cluster_manager.fleet.lxd import InMemoryLXD, Instance
from cluster_manager.fleet.tunnel import SimulatedTunnel
from e2e_fixtures import create_token, unit_request, wait_for_tunnel_rows


@pytest.fixture
def deployment(deploy):
    return deploy(units=2)


async def test_tunnel_through_traefik_answers_on_both_units(deployment, sign_in, pool):
    admin = await sign_in(deployment, "admin")
    cluster = deployment.cluster("nat-1")
    await cluster.join(await create_token(admin, "nat-1"))
    lxd = InMemoryLXD([Instance("web", "Running", "virtual-machine", "m3")])
    tunnel = SimulatedTunnel(cluster, lxd)
    await tunnel.connect()
    tunnel.start()
    try:
        await wait_for_tunnel_rows(pool, 1)
        holder = await pool.fetchval("SELECT unit_address FROM remote_cluster_tunnels")
        answers = [
            await unit_request(
                deployment, admin, unit, "GET", "/1.0/remote-cluster/nat-1/lxd/instances/web"
            )
            for unit in (0, 1)
        ]
        status, listed = await unit_request(deployment, admin, 0, "GET", "/1.0/remote-cluster")
        # A '#' in the name is part of the path (found by schemathesis): re-encoded, not cut.
        odd_status, odd_body = await unit_request(
            deployment, admin, 1, "GET", "/1.0/remote-cluster/nat-1/lxd/instances/a%23b"
        )
    finally:
        await tunnel.close()

    await wait_for_tunnel_rows(pool, 0)
    closed_status, closed_body = await unit_request(
        deployment, admin, 1, "GET", "/1.0/remote-cluster/nat-1/lxd/instances"
    )

    assert closed_status == 503
    assert "microcloud cluster-manager set reverse_tunnel true" in json.loads(closed_body)["error"]
    units = [u.settings.internal_address for u in deployment.units]
    assert holder in units
    for status_code, body in answers:
        assert status_code == 200, body
        assert json.loads(body)["metadata"]["location"] == "m3"
    assert lxd.requests == [("GET", "/1.0/instances/web")] * 2 + [("GET", "/1.0/instances/a%23b")]
    assert odd_status == 404
    assert json.loads(odd_body)["error"] == "Instance not found"
    assert status == 200
    assert json.loads(listed)["metadata"]["clusters"][0]["tunnel_connected"] is True
