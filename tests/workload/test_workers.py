"""``serve --workers 2``: two processes share the ports; a unit's guarantees hold in both.

Each worker answers on its own ops port (``ops_port + k``), so its counters show that fresh
connections reached both processes: the kernel spreads them (``SO_REUSEPORT``).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from cluster_manager import clusters, db, notifications, tokens, worker_metrics, workers
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.fleet.lxd import InMemoryLXD, Instance
from cluster_manager.fleet.tunnel import SimulatedTunnel
from cluster_manager.management.sessions import SESSION_COOKIE
from cluster_manager.ports import unused_ports
from cluster_manager.settings import Settings, SettingsError
from e2e_fixtures import wait_for_tunnel_rows, wait_until
from oidc_fixtures import client_ssl

LISTENERS = """
SELECT client_port FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1
"""
HOLDERS = "SELECT unit_address FROM remote_cluster_tunnels"
ATTEMPTS = 20  # fresh connections; with two workers both are hit (2 ** -19 chance otherwise)


def counter(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``, from /metrics text."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def scrape(settings: Settings) -> str:
    """The unit's metrics: worker 0 serves every worker's, labelled ``worker``."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{settings.ops_port}/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


async def per_worker(settings: Settings, name: str, **labels: str) -> list[float]:
    """A counter of each of the two workers."""
    text = await scrape(settings)
    return [counter(text, name, worker=str(k), **labels) for k in (0, 1)]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "internal.key"
    path.write_text("ab" * 32)
    return path


def free_port_pair() -> int:
    """A port p such that p and p + 1 are free (worker k listens on ``internal_port + k``)."""
    return unused_ports(2)


@pytest.fixture
def two_workers(server_process, oidc_settings, key_file):
    """One unit: ``cluster-manager serve --workers 2`` (setting ``workers = 2``)."""
    unit = server_process(
        workers=2,
        internal_key_file=str(key_file),
        internal_port=free_port_pair(),
        heartbeat_rate_per_minute=60_000.0,  # the test sends many heartbeats in a second
        heartbeat_burst=10_000,
        **oidc_settings,
    )
    # Ready means worker 0 is; worker 1 counts in the unit's metrics once it serves everything.
    deadline = time.monotonic() + 30
    while 'worker="1"' not in asyncio.run(scrape(unit.settings)):
        assert time.monotonic() < deadline, unit.log()
        time.sleep(0.2)
    return unit


async def test_removed_cluster_is_refused_at_once_by_both_workers(two_workers, pool):
    settings = two_workers.settings
    token, _ = await tokens.create_token(pool, settings, "edge-1")
    cluster = SimulatedCluster("edge-1")
    await cluster.join(token.encode())
    for _ in range(ATTEMPTS):
        assert (await cluster.heartbeat())[0] == 200
    accepted = await per_worker(settings, "mcm_heartbeats_accepted_total")
    assert all(count > 0 for count in accepted), accepted  # both cached the identity

    await clusters.remove_cluster(pool, "edge-1")
    statuses = [(await cluster.heartbeat(check=False))[0] for _ in range(ATTEMPTS)]

    assert statuses == [403] * ATTEMPTS
    refused = await per_worker(
        settings, "mcm_heartbeats_refused_total", reason="unknown_certificate"
    )
    assert all(count > 0 for count in refused), refused


async def test_each_worker_holds_exactly_one_listen_connection(two_workers, pool):
    async def listeners() -> list[int]:
        rows = await pool.fetch(LISTENERS, notifications.APPLICATION_NAME)
        return [row["client_port"] for row in rows]

    async def both_listening() -> bool:
        return len(await listeners()) == 2

    await wait_until(both_listening)
    await asyncio.sleep(1)  # and no more come

    assert len(set(await listeners())) == 2


async def test_removed_clusters_tunnel_closes_whichever_worker_holds_it(two_workers, pool):
    settings = two_workers.settings
    tunnels = []
    for k in range(ATTEMPTS):  # their tunnels land on both workers (2 ** -19 chance otherwise)
        token, _ = await tokens.create_token(pool, settings, f"gone-{k}")
        cluster = SimulatedCluster(f"gone-{k}")
        await cluster.join(token.encode())
        tunnel = SimulatedTunnel(cluster, InMemoryLXD([]))
        await tunnel.connect()
        tunnel.start()
        tunnels.append(tunnel)
    try:

        async def recorded() -> bool:
            count = await pool.fetchval("SELECT count(*) FROM remote_cluster_tunnels")
            return count == len(tunnels)

        await wait_until(recorded)
        holders = {r["unit_address"] for r in await pool.fetch(HOLDERS)}
        for tunnel in tunnels:
            await clusters.remove_cluster(pool, tunnel.cluster.name)

        async def all_closed() -> bool:
            return all(t.ws.closed for t in tunnels)

        await wait_until(all_closed, within=5)
    finally:
        for tunnel in tunnels:
            await tunnel.close()

    assert holders == {f"127.0.0.1:{settings.internal_port + k}" for k in (0, 1)}


async def test_the_units_metrics_port_serves_every_workers_counters(two_workers, pool):
    settings = two_workers.settings
    token, _ = await tokens.create_token(pool, settings, "edge-2")
    cluster = SimulatedCluster("edge-2")
    await cluster.join(token.encode())
    for _ in range(ATTEMPTS):
        await cluster.heartbeat()

    text = await scrape(settings)

    merged = [counter(text, "mcm_heartbeats_accepted_total", worker=str(k)) for k in (0, 1)]
    assert sum(merged) == ATTEMPTS
    assert all(count > 0 for count in merged), merged
    assert text.count("# TYPE mcm_heartbeats_accepted_total counter") == 1
    assert counter(text, "process_resident_memory_bytes", worker="1") > 0


async def test_logged_out_session_is_refused_by_both_workers(two_workers, signed_in, idp):
    settings = two_workers.settings
    browser = await signed_in(settings)
    cookies = {c.key: c.value for c in browser.cookie_jar}
    fresh = aiohttp.TCPConnector(ssl=client_ssl(settings, idp), force_close=True)
    base = f"https://127.0.0.1:{settings.management_port}"
    async with aiohttp.ClientSession(connector=fresh, cookies=cookies) as http:
        for _ in range(ATTEMPTS):
            async with http.get(base + "/1.0/remote-cluster") as response:
                assert response.status == 200
        async with browser.post("/oidc/logout") as response:
            assert response.status == 200
        before = await per_worker(settings, "mcm_http_requests_total", code="401")
        statuses = []
        for _ in range(ATTEMPTS):
            async with http.get(base + "/1.0/remote-cluster") as response:
                statuses.append(response.status)
    assert SESSION_COOKIE in cookies
    assert statuses == [401] * ATTEMPTS
    after = await per_worker(settings, "mcm_http_requests_total", code="401")
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


async def test_tunnel_on_one_worker_serves_requests_arriving_on_either(
    two_workers, pool, signed_in, idp
):
    settings = two_workers.settings
    token, _ = await tokens.create_token(pool, settings, "far-1")
    cluster = SimulatedCluster("far-1")
    await cluster.join(token.encode())
    tunnel = SimulatedTunnel(cluster, InMemoryLXD([Instance("web", "Running", "container", "m1")]))
    await tunnel.connect()
    tunnel.start()
    try:
        await wait_for_tunnel_rows(pool, 1)
        holder = await pool.fetchval("SELECT unit_address FROM remote_cluster_tunnels")
        own = {f"127.0.0.1:{settings.internal_port + k}" for k in (0, 1)}
        browser = await signed_in(settings)
        cookies = {c.key: c.value for c in browser.cookie_jar}
        connector = aiohttp.TCPConnector(ssl=client_ssl(settings, idp), force_close=True)
        base = f"https://127.0.0.1:{settings.management_port}"
        before = await per_worker(settings, "mcm_http_requests_total", code="200")
        async with aiohttp.ClientSession(connector=connector, cookies=cookies) as http:
            for _ in range(ATTEMPTS):
                async with http.get(base + "/1.0/remote-cluster/far-1/lxd/instances/web") as r:
                    assert r.status == 200, await r.text()
                    assert (await r.json())["metadata"]["location"] == "m1"
        after = await per_worker(settings, "mcm_http_requests_total", code="200")
    finally:
        await tunnel.close()

    assert holder in own
    assert len(tunnel.lxd.requests) == ATTEMPTS
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


def children(pid: int) -> list[int]:
    """Living processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def worker_processes(supervisor: int) -> list[int]:
    """The worker processes of a supervisor."""
    return [
        pid
        for pid in children(supervisor)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def wait_gone(pids: list[int]) -> None:
    """Wait until none of the processes lives; fail after 15 s."""
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)


def test_sigterm_stops_every_worker(two_workers):
    started = time.monotonic()
    workers_before = worker_processes(two_workers.process.pid)
    assert len(workers_before) == 2

    two_workers.process.terminate()  # as Pebble stops the service
    status = two_workers.process.wait(20)

    wait_gone(workers_before)
    assert status == 0
    assert time.monotonic() - started < 15


def test_workers_stop_when_the_supervisor_is_killed(two_workers):
    supervisor = two_workers.process
    workers_before = [
        pid
        for pid in children(supervisor.pid)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(workers_before) == 2

    supervisor.kill()  # SIGKILL: no chance to stop them itself
    supervisor.wait()

    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in workers_before):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", two_workers.settings.connector_port), 1).close()


def test_worker_settings_get_their_own_ops_and_internal_ports(make_settings):
    settings = make_settings(
        ops_port=9102, internal_port=9104, internal_address="10.0.0.7:9104", internal_key_file="k"
    )

    first, second = (workers.for_worker(settings, k, 3) for k in (0, 1))

    assert (first.workers, first.ops_port, first.internal_address) == (3, 9102, "10.0.0.7:9104")
    assert (second.ops_host, second.ops_port, second.internal_port) == ("127.0.0.1", 0, 9105)
    assert second.internal_address == "10.0.0.7:9105"
    assert second.connector_port == settings.connector_port


def test_several_workers_need_fixed_ports_apart(make_settings):
    with pytest.raises(SettingsError, match="connector_port"):
        workers.for_worker(make_settings(connector_port=0), 0, 2)
    assert workers.for_worker(make_settings(connector_port=0), 0, 1).connector_port == 0
    overlapping = make_settings(ops_port=9006, internal_port=9004, internal_key_file="k")
    with pytest.raises(SettingsError, match="9004 to 9007, which holds ops_port"):
        workers.for_worker(overlapping, 0, 4)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1), ("junk", None)],
)
def test_available_cpus_follow_the_cgroup_quota(tmp_path, cpu_max, expected):
    (tmp_path / "cpu.max").write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))

    found = workers.available_cpus(tmp_path / "cpu.max", tmp_path / "q", tmp_path / "p")

    assert found == (min(affinity, expected) if expected else affinity)


def test_merged_metrics_label_each_sample_with_its_worker():
    texts = {
        0: '# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total{code="200"} 3.0\n',
        1: '# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total{code="200"} 4.0\n',
    }

    text = worker_metrics.merge(texts).decode()

    assert 'hits_total{code="200",worker="0"} 3.0' in text
    assert 'hits_total{code="200",worker="1"} 4.0' in text
    assert text.count("# TYPE hits_total counter") == 1


@pytest.mark.parametrize(("count", "per_unit"), [(1, 18), (2, 18), (4, 24), (8, 48)])
def test_database_connections_per_unit_follow_the_documented_formula(count, per_unit):
    sizes = db.pool_sizes(count)

    assert count * sizes.per_process == per_unit
    assert min(sizes.connector, sizes.management) >= 2
    assert sizes.ops >= 1


def test_negative_workers_is_refused(make_settings):
    with pytest.raises(SettingsError, match="workers"):
        workers.count(make_settings(workers=-1))
