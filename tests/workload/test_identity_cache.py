"""Every unit knows every enrolled certificate without reading the database on a heartbeat."""

from __future__ import annotations

import pytest
from cluster_manager import clusters, tokens
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.identity import IDENTITIES, IdentityCache
from e2e_fixtures import wait_until


def identities(servers) -> IdentityCache:
    connector = next(r for r in servers.runners if IDENTITIES in r.app)
    return connector.app[IDENTITIES]


@pytest.fixture
async def enrol(pool):
    async def enrol(settings, name: str) -> SimulatedCluster:
        token, _ = await tokens.create_token(pool, settings, name)
        cluster = SimulatedCluster(name)
        await cluster.join(token.encode())
        return cluster

    return enrol


async def test_unit_started_after_enrolment_knows_the_cluster(start_server, enrol):
    first = await start_server()
    cluster = await enrol(first.settings, "edge-1")

    second = await start_server()
    cache = identities(second)
    await wait_until(lambda: _true(cache.listening))

    assert cache.cached(cluster.fingerprint).name == "edge-1"


async def test_enrolment_through_one_unit_reaches_the_other_at_once(start_server, enrol):
    first = await start_server()
    second = await start_server()
    cache = identities(second)
    await wait_until(lambda: _true(cache.listening))

    cluster = await enrol(first.settings, "edge-2")

    await wait_until(lambda: _true(cache.cached(cluster.fingerprint) is not None))
    assert cache.cached(cluster.fingerprint).name == "edge-2"


async def test_removal_through_one_unit_leaves_no_trace_in_the_other(start_server, enrol, pool):
    first = await start_server()
    second = await start_server()
    cache = identities(second)
    cluster = await enrol(first.settings, "edge-3")
    await wait_until(lambda: _true(cache.cached(cluster.fingerprint) is not None))

    await clusters.remove_cluster(pool, "edge-3")

    await wait_until(lambda: _true(cache.cached(cluster.fingerprint) is None))
    assert await cache.lookup(cluster.fingerprint) is None


async def _true(value: bool) -> bool:
    return value
