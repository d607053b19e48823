"""Simulated clusters with reverse tunnels, for tests acting on clusters' LXD.

Registered in tests/conftest.py (pytest_plugins): ``enrolled`` and ``open_tunnel``.
The daemon's side is :mod:`cluster_manager.fleet.tunnel` (see its docstring for the MicroCloud
source it follows).
"""

from __future__ import annotations

import pytest
from cluster_manager import tokens
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.fleet.tunnel import SimulatedTunnel
from cluster_manager.tunnel import TUNNELS, Tunnels


def tunnels_of(servers) -> Tunnels:
    """The tunnel service of a running unit."""
    return next(r.app[TUNNELS] for r in servers.runners if TUNNELS in r.app)


@pytest.fixture
async def enrolled(pool):
    """Factory: a cluster joined to the given servers."""

    async def enrol(servers, name: str) -> SimulatedCluster:
        token, _ = await tokens.create_token(pool, servers.settings, name)
        cluster = SimulatedCluster(name)
        await cluster.join(token.encode())
        return cluster

    return enrol


@pytest.fixture
async def open_tunnel():
    """Factory: a connected, serving simulated tunnel for a cluster."""
    opened: list[SimulatedTunnel] = []

    async def open_(cluster: SimulatedCluster, **options) -> SimulatedTunnel:
        tunnel = SimulatedTunnel(cluster, **options)
        opened.append(tunnel)
        await tunnel.connect()
        tunnel.start()
        return tunnel

    yield open_
    for tunnel in opened:
        await tunnel.close()
