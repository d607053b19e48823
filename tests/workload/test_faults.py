"""Faults in the deployed product: PostgreSQL stops and returns, a unit is killed.

The deployment is the end-to-end one (``e2e_fixtures.deploy``: two units behind Traefik with
the charm's routes). The outage test has a PostgreSQL of its own, stopped and started again
on the same data folder and port.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from cluster_manager.embedded_postgres import EmbeddedPostgres
from cluster_manager.fleet import ConnectorError, SimulatedCluster
from conftest import table_rows
from e2e_fixtures import Deployment, create_token, wait_until

# Rate limits out of the way: these tests send many heartbeats per cluster on purpose.
UNTHROTTLED = {"heartbeat_rate_per_minute": 60_000.0, "heartbeat_burst": 10_000}
QUICK = 5.0  # seconds within which a refusal must come during an outage


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL only this test uses (it will be stopped)."""
    directory = Path(tempfile.mkdtemp(prefix="mcm-fault-pg-"))
    os.chmod(directory, 0o711)  # noqa: S103 - PostgreSQL runs as another user when root
    server = EmbeddedPostgres(directory, settings={"fsync": "off", "synchronous_commit": "off"})
    server.start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


async def enrol(deployment: Deployment, admin: aiohttp.ClientSession, name: str):
    cluster = deployment.cluster(name)
    status, body = await cluster.join(await create_token(admin, name))
    assert status == 200, body
    return cluster


async def timed(request) -> tuple[int | str, float]:
    """The status of a request (or the error's name) and how long it took."""
    started = time.monotonic()
    try:
        status = await request
    except (ConnectorError, OSError, TimeoutError, aiohttp.ClientError) as error:
        status = type(error).__name__
    return status, time.monotonic() - started


async def heartbeat_status(cluster: SimulatedCluster) -> int:
    status, _ = await cluster.heartbeat(check=False)
    return status


async def join_status(cluster: SimulatedCluster, token: str) -> int:
    status, _ = await cluster.join(token, check=False)
    return status


async def management_status(http: aiohttp.ClientSession, path: str) -> int:
    async with http.get(path) as response:
        await response.read()
        return response.status


async def saved_state(dsn: str) -> dict[str, Any]:
    """What must survive: clusters, tokens, and which clusters have details."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        rows = await table_rows(pool)
    finally:
        await pool.close()
    return {
        "clusters": [
            (r["id"], r["name"], r["fingerprint"], r["status"]) for r in rows["remote_clusters"]
        ],
        "tokens": [(r["name"], r["secret"]) for r in rows["remote_cluster_tokens"]],
        "details": [r["cluster_id"] for r in rows["remote_cluster_details"]],
    }


async def test_database_outage_answers_503_quickly_and_recovers_without_loss(
    deploy, sign_in, own_postgres
):
    deployment = deploy(units=2, database_dsn=own_postgres.dsn, **UNTHROTTLED)
    admin = await sign_in(deployment)
    fleet = [await enrol(deployment, admin, f"edge-{i}") for i in range(4)]
    assert [await heartbeat_status(c) for c in fleet] == [200] * 4
    pending = await create_token(admin, "edge-pending")
    before = await saved_state(own_postgres.dsn)
    port = own_postgres.port
    stop_load = asyncio.Event()
    under_load: list[tuple[int | str, float]] = []

    async def load(cluster: SimulatedCluster) -> None:
        while not stop_load.is_set():
            under_load.append(await timed(heartbeat_status(cluster)))
            await asyncio.sleep(0.05)

    loaders = [asyncio.create_task(load(c)) for c in fleet]
    await asyncio.sleep(1)

    await asyncio.to_thread(own_postgres.stop)
    during = [
        *[await timed(heartbeat_status(c)) for c in fleet for _ in range(2)],
        *[await timed(management_status(admin, "/1.0/remote-cluster")) for _ in range(4)],
        *[await timed(management_status(admin, "/health/ready")) for _ in range(2)],
        await timed(join_status(deployment.cluster("edge-pending"), pending)),
    ]
    await asyncio.to_thread(own_postgres.start)

    async def heartbeats_accepted() -> bool:
        return [await heartbeat_status(c) for c in fleet] == [200] * len(fleet)

    await wait_until(heartbeats_accepted, within=30)
    stop_load.set()
    await asyncio.gather(*loaders)

    assert [status for status, _ in during] == [503] * len(during), during
    assert max(seconds for _, seconds in during) < QUICK, during
    assert own_postgres.port == port
    assert {status for status, _ in under_load} <= {200, 503}, under_load
    assert max(seconds for _, seconds in under_load) < QUICK, under_load
    assert await saved_state(own_postgres.dsn) == before
    # Everything works again, on both units: management, a join with the kept token, removal.
    for _ in range(4):
        assert await management_status(admin, "/1.0/remote-cluster") == 200
    joined = deployment.cluster("edge-pending")
    status, body = await joined.join(pending)
    assert status == 200, body
    async with admin.delete("/1.0/remote-cluster/edge-0") as response:
        assert response.status == 200, await response.text()
    assert [await heartbeat_status(fleet[0]) for _ in range(4)] == [403] * 4


def health_check_seconds(deployment: Deployment) -> float:
    """How long Traefik may take to notice a dead server, per the rendered configuration."""
    longest = 0.0
    for service in deployment.dynamic_config["tcp"]["services"].values():
        check = service["loadBalancer"].get("healthCheck")
        if check:
            interval = float(check.get("interval", "30s").removesuffix("s"))
            timeout = float(check.get("timeout", "5s").removesuffix("s"))
            longest = max(longest, interval + timeout)
    return longest


async def test_killed_unit_leaves_the_other_serving_everything(deploy, sign_in):
    deployment = deploy(units=2, **UNTHROTTLED)
    admin = await sign_in(deployment)
    fleet = [await enrol(deployment, admin, f"edge-{i}") for i in range(3)]

    victim = deployment.units[0].process
    assert victim is not None
    victim.kill()  # SIGKILL: no goodbye
    victim.wait()
    await asyncio.sleep(health_check_seconds(deployment))

    heartbeats = [await timed(heartbeat_status(c)) for c in fleet for _ in range(3)]
    management = [await timed(management_status(admin, "/1.0/remote-cluster")) for _ in range(4)]
    token = await create_token(admin, "edge-new")
    newcomer = await timed(join_status(deployment.cluster("edge-new"), token))

    assert [status for status, _ in heartbeats] == [200] * 9, (
        f"heartbeats through Traefik after a unit died: {heartbeats}\n"
        f"Traefik: {deployment.traefik.log()}"
    )
    assert [s for s, _ in management] == [200] * 4, management
    assert newcomer[0] == 200, newcomer
