"""The product as deployed: two units on one PostgreSQL behind real Traefik (the charm's routes).

Clusters find the connector at ``connector.mcm.test:<Traefik port>`` (what tokens hand out),
people at ``https://mgmt.mcm.test:<Traefik port>``; Traefik passes TLS through by SNI, so the
certificates seen are the units' own. See ``e2e_fixtures`` for the deployment. The browser
(Debian's Chromium, driven by Playwright) finds the management domain on 127.0.0.1 through a
host resolver rule, so it too signs in and reads the UI through Traefik.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from cluster_manager.certificates import fingerprint
from cluster_manager.fleet import SimulatedCluster, client
from cluster_manager.fleet.cluster import STATUS_PATH
from e2e_fixtures import (
    CONNECTOR_DOMAIN,
    HOSTS,
    MANAGEMENT_DOMAIN,
    Deployment,
    create_token,
    served_certificate,
    unit_request,
)
from oidc_fixtures import USERS
from playwright.async_api import Browser, async_playwright
from ui_browser import CHROMIUM_ARGS, chromium_path, expect, new_page, sign_in

FLEET_SIZE = 8


@pytest.fixture
def deployment(deploy) -> Deployment:
    return deploy(units=2)


@pytest.fixture
async def admin(deployment, sign_in) -> aiohttp.ClientSession:
    return await sign_in(deployment, "admin")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium finding the management domain on 127.0.0.1, where Traefik listens."""
    resolve = f"--host-resolver-rules=MAP {MANAGEMENT_DOMAIN} {HOSTS[MANAGEMENT_DOMAIN]}"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=[*CHROMIUM_ARGS, resolve]
        )
        yield chromium
        await chromium.close()


async def enrol(deployment: Deployment, admin: aiohttp.ClientSession, name: str):
    cluster = deployment.cluster(name)
    status, body = await cluster.join(await create_token(admin, name))
    assert status == 200, body
    return cluster


async def heartbeat_to_unit(
    deployment: Deployment, unit: int, cluster: SimulatedCluster
) -> tuple[int, bytes]:
    """A heartbeat sent to one unit's connector port, not through Traefik."""
    settings = deployment.units[unit].settings
    hosts = {CONNECTOR_DOMAIN: settings.connector_host}
    der = served_certificate(settings.connector_port, CONNECTOR_DOMAIN, settings.connector_host)
    assert fingerprint(der) == deployment.connector_fingerprint
    return await client.send(
        f"{CONNECTOR_DOMAIN}:{settings.connector_port}",
        cluster.identity.pinned_context(der),
        "POST",
        STATUS_PATH,
        cluster.status.next_body(),
        hosts=hosts,
        check=False,
    )


async def accepted_heartbeats(deployment: Deployment, unit: int) -> float:
    """The unit's own count of accepted heartbeats, from its /metrics."""
    port = deployment.units[unit].settings.ops_port
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("mcm_heartbeats_accepted_total "):
            return float(line.split()[1])
    raise AssertionError(f"no mcm_heartbeats_accepted_total in:\n{text[:2000]}")


def joined_in_log(deployment: Deployment, unit: int) -> set[str]:
    """Names of the clusters whose join the unit logged."""
    return {
        line.rsplit("cluster ", 1)[1].removesuffix(" joined")
        for line in deployment.units[unit].log().splitlines()
        if line.endswith(" joined") and "cluster " in line
    }


async def test_traefik_passes_each_domain_through_to_its_certificate(deployment):
    connector = served_certificate(deployment.port, CONNECTOR_DOMAIN)
    management = served_certificate(deployment.port, MANAGEMENT_DOMAIN)

    assert fingerprint(connector) == deployment.connector_fingerprint
    assert fingerprint(management) == deployment.management_fingerprint


async def test_management_api_is_ready_through_traefik(deployment, sign_in):
    http = await sign_in(deployment, "admin")
    statuses = []
    for _ in range(4):  # new connections: both units answer in turn
        async with http.get("/health/ready") as response:
            statuses.append((response.status, await response.text()))

    assert all(status == 200 for status, _ in statuses), statuses
    assert json.loads(statuses[0][1])["metadata"] == {"ready": True}


async def test_fleet_joins_and_reports_through_traefik_to_both_units(deployment, admin):
    names = [f"edge-{i}" for i in range(FLEET_SIZE)]
    tokens = [await create_token(admin, name) for name in names]
    fleet = [deployment.cluster(name) for name in names]

    joins = await asyncio.gather(*(c.join(t) for c, t in zip(fleet, tokens, strict=True)))
    rounds = [await asyncio.gather(*(c.heartbeat() for c in fleet)) for _ in range(3)]

    assert [status for status, _ in joins] == [200] * FLEET_SIZE, joins
    assert all(status == 200 for beats in rounds for status, _ in beats), rounds
    async with admin.get("/1.0/remote-cluster") as response:
        listing = await response.json()
    assert response.status == 200, listing
    shown = {c["name"]: c for c in listing["metadata"]["clusters"]}
    assert sorted(shown) == names
    assert all(c["last_status_update_at"] for c in shown.values()), shown
    # Traefik spread the work over both units.
    assert joined_in_log(deployment, 0) | joined_in_log(deployment, 1) == set(names)
    assert joined_in_log(deployment, 0)
    assert joined_in_log(deployment, 1)
    per_unit = [await accepted_heartbeats(deployment, u) for u in (0, 1)]
    assert sum(per_unit) == 3 * FLEET_SIZE, per_unit
    assert min(per_unit) > 0, per_unit


async def test_removed_cluster_is_refused_by_other_unit_at_once(deployment, admin):
    removed = await enrol(deployment, admin, "edge-removed")
    kept = await enrol(deployment, admin, "edge-kept")
    for unit in (0, 1):  # both units know (and cache) the cluster
        status, body = await heartbeat_to_unit(deployment, unit, removed)
        assert status == 200, body

    status, body = await unit_request(
        deployment, admin, 0, "DELETE", "/1.0/remote-cluster/edge-removed"
    )
    assert status == 200, body
    refused = await heartbeat_to_unit(deployment, 1, removed)
    through_traefik = [await removed.heartbeat(check=False) for _ in range(4)]

    assert refused[0] == 403, refused
    assert "unknown cluster certificate" in json.loads(refused[1])["error"]
    assert [status for status, _ in through_traefik] == [403] * 4, through_traefik
    for unit in (0, 1):
        status, body = await heartbeat_to_unit(deployment, unit, kept)
        assert status == 200, body
    status, body = await unit_request(
        deployment, admin, 1, "GET", "/1.0/remote-cluster/edge-removed"
    )
    assert status == 404, body


async def test_browser_signs_in_through_traefik_and_sees_the_fleet(deployment, admin, browser):
    running = {}
    for name in ("edge-ui-1", "edge-ui-2", "edge-ui-3"):
        cluster = await enrol(deployment, admin, name)
        payload = cluster.status.next()
        status, body = await cluster.heartbeat(payload)
        assert status == 200, body
        running[name] = sum(s["count"] for s in payload["instance_statuses"] or [])
    # Both units send the identity provider back to Traefik's address (registered there).
    assert {u.settings.management_url for u in deployment.units} == {deployment.management_url}
    context, page, problems = await new_page(browser)

    await sign_in(page, deployment.units[0].settings, "admin", USERS["admin"]["password"])
    await expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
    response = await page.goto(deployment.management_url + "/clusters")

    assert response is not None
    assert response.ok, response.status
    # Only Traefik listens on 127.0.0.1; TLS passed through, so the unit's certificate shows.
    details = await response.security_details()
    assert details is not None
    assert details.get("subjectName") == "mcm-e2e-management", details
    await expect(page.locator("tbody tr")).to_have_count(len(running))
    for name, instances in running.items():
        row = page.get_by_role("row", name=re.compile(rf"\b{re.escape(name)}\b"))
        await expect(row).to_contain_text("Healthy")
        await expect(row).to_contain_text(str(instances))
        await expect(row.get_by_role("meter", name=f"Memory of {name}")).to_be_visible()
        await expect(row).to_contain_text(re.compile(r"just now|\d+ s ago"))
    await context.close()
    assert not problems.unexpected(), problems.unexpected()
