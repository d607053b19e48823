"""Heartbeats forwarded by remote write to a real Prometheus, checked through its query API."""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cluster_manager import tokens
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.forwarding import sender
from cluster_manager.server import Servers
from conftest import free_port
from prometheus_client.parser import text_string_to_metric_families
from prometheus_server import PrometheusServer, scrape, value


@pytest.fixture
def prometheus() -> Iterator[PrometheusServer]:
    """A Prometheus of this test's own, receiving remote writes."""
    server = PrometheusServer(Path(tempfile.mkdtemp(prefix="mcm-test-prom-")), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def forwarding_server(make_settings, prometheus) -> AsyncIterator[Servers]:
    """The three servers, forwarding to the test's Prometheus."""
    servers = Servers(make_settings(remote_write_urls=(prometheus.write_url,)))
    await servers.start()
    yield servers
    await servers.stop()


@pytest.fixture
def enrol(forwarding_server, pool):
    """Enrol a simulated cluster through the real join flow."""

    async def enrol(name: str, **kwargs) -> SimulatedCluster:
        token, _ = await tokens.create_token(pool, forwarding_server.settings, name)
        cluster = SimulatedCluster(name, **kwargs)
        status, body = await cluster.join(token.encode())
        assert status == 200, body
        return cluster

    return enrol


def one(result: list[dict]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def oracle_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """The member's samples as prometheus_client's own parser reads them."""
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


async def test_heartbeat_reaches_prometheus_as_cluster_and_member_series(prometheus, enrol):
    cluster = await enrol("edge-1", metrics_bytes=20 * 1024, seed="forward-1")
    payload = cluster.status.next()

    status, body = await cluster.heartbeat(payload)

    assert status == 200, body
    memory = await prometheus.wait_for('mcm_cluster_memory_used_bytes{cluster="edge-1"}')
    assert one(memory) == payload["memory_usage"]
    q = prometheus.query
    assert (
        one(await q('mcm_cluster_memory_total_bytes{cluster="edge-1"}'))
        == payload["memory_total_amount"]
    )
    for window in ("1", "5", "15"):
        sent = float(payload[f"cpu_load_{window}"])
        assert one(await q(f'mcm_cluster_load{window}{{cluster="edge-1"}}')) == sent
    assert one(await q('mcm_cluster_cpu_count{cluster="edge-1"}')) == payload["cpu_total_count"]
    for entry in payload["instance_statuses"] or []:
        series = f'mcm_cluster_instances{{cluster="edge-1",status="{entry["status"]}"}}'
        assert one(await q(series)) == entry["count"]
    instance_states = {r["metric"]["status"] for r in await q("mcm_cluster_instances")}
    assert {"Running", "Stopped", "Frozen", "Error"} <= instance_states
    members = {
        r["metric"]["status"]: float(r["value"][1])
        for r in await q('mcm_cluster_members{cluster="edge-1"}')
    }
    for entry in payload["member_statuses"] or []:
        assert members[entry["status"]] == entry["count"]
    for pool in payload["storage_pool_usages"] or []:
        where = f'cluster="edge-1",pool="{pool["name"]}"'
        where += f',member="{pool["member"]}"' if pool["member"] else ',member=""'
        assert one(await q(f"mcm_cluster_storage_pool_total_bytes{{{where}}}")) == pool["total"]
        assert one(await q(f"mcm_cluster_storage_pool_used_bytes{{{where}}}")) == pool["usage"]

    for member in payload["server_metrics"]:
        expected = oracle_samples(member["metrics"])
        selector = f'{{cluster="edge-1",member="{member["member"]}",__name__=~"lxd_.+"}}'
        assert one(await q(f"count({selector})")) == len(expected)
        for name, labels, sent in expected[:: max(1, len(expected) // 25)]:
            matchers = ",".join(
                ['cluster="edge-1"', f'member="{member["member"]}"']
                + [f'{key}="{val}"' for key, val in labels.items()]
            )
            got = one(await q(f"{name}{{{matchers}}}"))
            assert got == sent or (math.isnan(got) and math.isnan(sent)), (name, labels)


async def test_bad_metric_lines_are_skipped_and_counted(
    forwarding_server, prometheus, enrol, pool
):
    cluster = await enrol("edge-2", metrics_bytes=4 * 1024)
    payload = cluster.status.next()
    payload["server_metrics"] = [
        {
            "member": "micro01",
            "service": "LXD",
            "metrics": (
                "# TYPE lxd_good gauge\n"
                'lxd_good{project="default",cluster="inner"} 42\n'
                'lxd_broken{unterminated="x} 1\n'
                "9starts_with_digit 1\n"
                "lxd_no_value\n"
                'lxd_escaped{name="a \\"quoted\\" \\\\ name"} 7\n'
                "lxd_not_a_number{} one\n"
                "lxd_last 3 1700000000000\n"
            ),
        }
    ]
    before = await scrape(forwarding_server.ops_port)

    status, body = await cluster.heartbeat(payload)

    assert status == 200, body
    stored = await pool.fetchrow(
        "SELECT d.memory_usage, d.server_metrics FROM remote_cluster_details d"
        " JOIN remote_clusters c ON c.id = d.cluster_id WHERE c.name = 'edge-2'"
    )
    assert stored is not None
    assert stored["memory_usage"] == payload["memory_usage"]
    assert stored["server_metrics"][0]["member"] == "micro01"
    good = await prometheus.wait_for('lxd_good{cluster="edge-2",member="micro01"}')
    assert good[0]["metric"]["exported_cluster"] == "inner"
    assert one(good) == 42
    escaped = await prometheus.query('lxd_escaped{cluster="edge-2"}')
    assert escaped[0]["metric"]["name"] == 'a "quoted" \\ name'
    assert one(await prometheus.query('lxd_last{cluster="edge-2"}')) == 3
    after = await scrape(forwarding_server.ops_port)
    bad = "mcm_forward_bad_metric_lines_total"
    assert value(after, bad) - value(before, bad) == 4


async def test_prometheus_outage_drops_counted_and_forwarding_resumes(
    monkeypatch, make_settings, prometheus, pool
):
    # One heartbeat per request, and a backlog that holds only the request being retried and
    # the newest one: every heartbeat in between is dropped.
    limits = sender.ForwardingLimits(max_batch_heartbeats=1, max_backlog_bytes=1, max_backoff=0.5)
    monkeypatch.setattr(sender, "LIMITS", limits)
    servers = Servers(make_settings(remote_write_urls=(prometheus.write_url,)))
    await servers.start()
    try:
        token, _ = await tokens.create_token(pool, servers.settings, "edge-3")
        cluster = SimulatedCluster("edge-3", metrics_bytes=2 * 1024)
        await cluster.join(token.encode())
        before = await scrape(servers.ops_port)
        prometheus.stop()

        for _ in range(5):
            status, body = await cluster.heartbeat()
            assert status == 200, body
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM remote_cluster_details d JOIN remote_clusters c"
                " ON c.id = d.cluster_id WHERE c.name = 'edge-3'"
            )
            == 1
        )
        destination = sender.display_url(prometheus.write_url)
        dropped = "mcm_forward_dropped_heartbeats_total"
        failed = "mcm_forward_requests_total"
        for _ in range(100):
            during = await scrape(servers.ops_port)
            drops = value(during, dropped, reason="backlog_full") - value(
                before, dropped, reason="backlog_full"
            )
            failures = value(during, failed, destination=destination, outcome="failed")
            if drops >= 1 and failures > value(
                before, failed, destination=destination, outcome="failed"
            ):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no drops or failures counted: {sorted(during.items())}")

        prometheus.start()
        last = cluster.status.next()
        status, body = await cluster.heartbeat(last)
        assert status == 200, body
        query = f'mcm_cluster_memory_used_bytes{{cluster="edge-3"}} == {last["memory_usage"]}'
        await prometheus.wait_for(query)
        after = await scrape(servers.ops_port)
        assert value(after, failed, destination=destination, outcome="sent") > value(
            before, failed, destination=destination, outcome="sent"
        )
    finally:
        await servers.stop()


def test_remote_write_url_is_shown_without_credentials():
    assert (
        sender.display_url("https://user:secret@prom.example:9090/api/v1/write?x=1")
        == "https://prom.example:9090/api/v1/write"
    )
    assert json.dumps(sender.display_url("http://[::1]:9090/w")) == '"http://[::1]:9090/w"'


async def test_one_cluster_sending_crafted_metrics_does_not_stall_the_others(
    forwarding_server, prometheus, enrol
):
    # Lines of blanks after a name made the old regular expression try every split of them:
    # 70 KiB stopped all remote writes for 21 s. Each line here is under the line limit, so
    # only a reader that is linear in the line gets through them in time.
    attacker = await enrol("hostile-1", metrics_bytes=1024)
    victim = await enrol("edge-victim", metrics_bytes=8 * 1024, seed="victim")
    crafted = attacker.status.next()
    crafted["server_metrics"] = [
        {
            "member": f"m{i}",
            "service": "LXD",
            "metrics": "".join(f"lxd_a{n}" + " \t" * 20_000 + "\n" for n in range(4)),
        }
        for i in range(3)
    ]
    payload = victim.status.next()
    before = await scrape(forwarding_server.ops_port)

    status, body = await attacker.heartbeat(crafted)
    assert status == 200, body
    status, body = await victim.heartbeat(payload)
    assert status == 200, body

    query = f'mcm_cluster_memory_used_bytes{{cluster="edge-victim"}} == {payload["memory_usage"]}'
    await prometheus.wait_for(query, within=5)
    member = payload["server_metrics"][0]["member"]
    assert await prometheus.query(f'count({{cluster="edge-victim",member="{member}"}}) > 0')
    after = await scrape(forwarding_server.ops_port)
    bad = "mcm_forward_bad_metric_lines_total"
    assert value(after, bad) - value(before, bad) == 12
