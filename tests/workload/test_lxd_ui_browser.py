"""A cluster's own LXD UI opened through the manager, in a real browser (Debian's Chromium).

The simulated cluster's LXD serves a small LXD UI at /ui/ (cluster_manager.fleet.lxd) whose
script lists /1.0/instances and stops an instance with PUT /1.0/instances/<name>/state, as the
real LXD UI does, with absolute paths. Through the manager those reach the cluster's LXD
through its reverse tunnel, recorded in the audit log.
"""

from __future__ import annotations

import pytest
from cluster_manager.fleet.lxd import InMemoryLXD, Instance
from oidc_fixtures import USERS
from ui_browser import base_url, expect, new_page, sign_in

ROLE_GROUPS = {"oidc_operator_group": "operators", "oidc_viewer_group": "viewers"}
SLOW = 30_000


@pytest.fixture
def settings(make_settings, oidc_settings):
    return make_settings(**oidc_settings, **ROLE_GROUPS)


@pytest.fixture
async def lxd(server, enrolled, open_tunnel):
    cluster = await enrolled(server, "edge-1")
    lxd = InMemoryLXD(
        [
            Instance("web", "Running", "container", "m1"),
            Instance("db", "Stopped", "virtual-machine", "m2"),
        ]
    )
    await open_tunnel(cluster, lxd=lxd, forward_ui=True)
    return lxd


async def test_admin_opens_the_clusters_lxd_ui_and_stops_an_instance(browser, settings, lxd, pool):
    context, page, problems = await new_page(browser)
    try:
        await sign_in(page, settings, "admin", USERS["admin"]["password"])
        await page.goto(base_url(settings) + "/lxd-ui/edge-1/")

        assert page.url == base_url(settings) + "/lxd-ui/edge-1/ui/"
        await expect(page.get_by_role("heading", name="LXD UI")).to_be_visible()
        items = page.get_by_role("list", name="Instances").get_by_role("listitem")
        await expect(items).to_have_count(2, timeout=SLOW)
        await expect(items.nth(0)).to_contain_text("web: Running")
        await expect(items.nth(1)).to_contain_text("db: Stopped")
        await expect(page.locator("#server")).to_have_text("API 1.0")  # computed URL, shim

        await page.get_by_role("button", name="Stop web").click()
        await expect(items.nth(0)).to_contain_text("web: Stopped", timeout=SLOW)
    finally:
        await context.close()

    assert lxd.instances["web"].status == "Stopped"
    # What the page asked for reached the cluster's LXD as LXD's own paths.
    assert ("GET", "/1.0/instances?recursion=1") in lxd.requests
    assert ("GET", "/1.0") in lxd.requests
    assert ("PUT", "/1.0/instances/web/state") in lxd.requests
    rows = await pool.fetch(
        "SELECT user_name, target, cluster, method, path, status FROM audit_log ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("Ada Admin", "manager", "edge-1", "GET", "/lxd-ui/edge-1/ui/", 200),
        ("Ada Admin", "cluster", "edge-1", "PUT", "/1.0/instances/web/state", 202),
    ]
    assert not problems.unexpected(), "\n".join(problems.unexpected())


@pytest.mark.parametrize("user", ["oscar", "alice"])
async def test_operator_and_viewer_are_refused(browser, settings, lxd, pool, user):
    context, page, problems = await new_page(browser)
    problems.allow(r"status of 403")
    try:
        await sign_in(page, settings, user, USERS[user]["password"])
        response = await page.goto(base_url(settings) + "/lxd-ui/edge-1/")

        assert response is not None
        assert response.status == 403
        await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        await expect(page.get_by_text("only administrators")).to_be_visible()
        await expect(page.get_by_role("list", name="Instances")).to_have_count(0)
    finally:
        await context.close()

    assert lxd.requests == []
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0
    assert not problems.unexpected(), "\n".join(problems.unexpected())
