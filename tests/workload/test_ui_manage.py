"""Managing clusters' LXD from the web UI, in a real browser, by role.

Debian's Chromium driven by Playwright signs in through the real test identity provider as an
administrator, an operator or a viewer. The server runs on PostgreSQL; the clusters are
simulated MicroCloud daemons that joined with real tokens and opened real reverse tunnels
(cluster_manager.fleet.tunnel), answering from an in-memory LXD (cluster_manager.fleet.lxd).

The screenshots of these pages in docs/ come from test_screenshots_of_the_management_pages:
CLUSTER_MANAGER_SCREENSHOTS=docs uv run --group test pytest tests/workload/test_ui_manage.py
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from cluster_manager import audit
from cluster_manager.audit import Actor
from cluster_manager.fleet.lxd import InMemoryLXD, Instance, Member
from e2e_fixtures import wait_for_tunnel_rows, wait_until
from oidc_fixtures import USERS
from playwright.async_api import Page
from ui_browser import (
    DESKTOP,
    PHONE,
    base_url,
    expect,
    new_page,
    overflow,
    screenshot,
    sign_in,
)

ROLE_GROUPS = {"oidc_operator_group": "operators", "oidc_viewer_group": "viewers"}
TUNNEL_COMMAND = "microcloud cluster-manager set reverse_tunnel true"
SLOW = 30_000
WARNING = {
    "uuid": "3f1c2b4e-0000-4000-8000-000000000001",
    "type": "Couldn't find the CGroup blkio",
    "severity": "low",
    "status": "new",
    "count": 3,
    "last_message": "disk I/O limits will be ignored <b>here</b>",
    "last_seen_at": "2026-12-06T10:00:00Z",
    "location": "m1",
    "project": "",
    "first_seen_at": "2026-12-06T09:00:00Z",
    "entity_url": "",
}


@pytest.fixture
def settings(make_settings, oidc_settings):
    """Operators and viewers have groups; a cluster that does not answer in 5 s is left out."""
    return make_settings(**oidc_settings, **ROLE_GROUPS, fleet_cluster_timeout=5.0)


@pytest.fixture
async def fleet(server, enrolled, open_tunnel, pool):
    """lon-a, fra-b and ams-c with tunnels, down (its LXD fails) and dark (no tunnel)."""
    lxds = {
        "lon-a": InMemoryLXD(
            [
                Instance("web-1", "Running", "container", "m1", addresses=("10.0.0.2", "fd42::2")),
                Instance("db-1", "Stopped", "virtual-machine", "m2"),
            ],
            members=[Member("m1", roles=("database", "database-leader")), Member("m2")],
            warnings=[WARNING],
        ),
        "fra-b": InMemoryLXD(
            [
                Instance("web-2", "Running", "container", "m1", project="shop"),
                Instance("bad", "Stopped", "container", "m1", broken=True),
            ]
        ),
        "ams-c": InMemoryLXD([Instance("web-3", "Frozen", "container", "m2")]),
        "down": InMemoryLXD([Instance("x")]),
    }
    tunnels = {}
    for name, lxd in lxds.items():
        cluster = await enrolled(server, name)
        await cluster.heartbeat()
        tunnels[name] = await open_tunnel(cluster, lxd=lxd)
    tunnels["down"].lxd_down = True
    dark = await enrolled(server, "dark")
    await dark.heartbeat()

    await wait_for_tunnel_rows(pool, len(lxds))
    return lxds, tunnels


@pytest.fixture
async def ui(browser, server, settings) -> AsyncIterator[Page]:
    """A fresh page; fails the test on any script or CSP error."""
    context, page, problems = await new_page(browser)
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    await context.close()
    assert not problems.unexpected(), "\n".join(problems.unexpected())


async def signed_in_as(page: Page, settings, user: str) -> Page:
    """Sign in as ``user`` and wait for the overview."""
    await sign_in(page, settings, user, USERS[user]["password"])
    await expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
    return page


def nav(page: Page):
    return page.get_by_role("navigation", name="Main")


def row(page: Page, name: str):
    """The table row of an instance (or, on the clusters page, of a cluster) by its name."""
    return page.locator(f'tbody tr[data-instance="{name}"], #main tbody tr[data-cluster="{name}"]')


async def test_operator_changes_instance_state_but_cannot_remove_or_configure(
    ui, settings, fleet, pool
):
    lxds, _ = fleet
    await signed_in_as(ui, settings, "oscar")
    await expect(ui.locator("#user-role")).to_have_text("Operator")
    await expect(nav(ui).get_by_role("link", name="Instances")).to_be_visible()
    await expect(nav(ui).get_by_role("link", name=re.compile("Enrol"))).to_be_hidden()
    await expect(nav(ui).get_by_role("link", name=re.compile("Audit"))).to_be_hidden()

    await ui.goto(base_url(settings) + "/clusters/lon-a")
    await expect(ui.locator("#details")).to_be_visible()
    await expect(ui.get_by_role("button", name=re.compile("Remove cluster"))).to_have_count(0)
    await expect(ui.get_by_role("button", name="Save changes")).to_have_count(0)
    await expect(ui.locator("#open-lxd-ui")).to_have_count(0)
    await (
        ui.get_by_role("navigation", name="Cluster views")
        .get_by_role("link", name="Instances")
        .click()
    )

    web = row(ui, "web-1")
    await expect(web).to_contain_text("Running", timeout=SLOW)
    await expect(web).to_contain_text("10.0.0.2")
    await expect(web).to_contain_text("fd42::2")
    await expect(web).to_contain_text("m1")
    await expect(web).to_contain_text("256 MiB")
    await expect(row(ui, "db-1")).to_contain_text("Stopped")
    await expect(row(ui, "db-1")).to_contain_text("VM")
    # Evacuating members is for administrators.
    await expect(ui.locator("#members-table")).to_contain_text("database-leader")
    await expect(ui.get_by_role("button", name=re.compile("^Evacuate"))).to_have_count(0)

    await web.get_by_role("button", name="Actions for web-1").click()
    await ui.get_by_role("menuitem", name="Stop…").click()
    dialog = ui.get_by_role("dialog")
    await expect(dialog).to_contain_text("Stop web-1?")
    await dialog.get_by_label("Force (do not wait for a clean shutdown)").check()
    await dialog.get_by_label("Timeout (seconds)").fill("5")
    await dialog.get_by_role("button", name="Stop", exact=True).click()

    await expect(ui.locator("#change-result")).to_contain_text("Stopped web-1.")
    await expect(row(ui, "web-1")).to_contain_text("Stopped")
    assert lxds["lon-a"].instances["web-1"].status == "Stopped"
    sent = lxds["lon-a"].state_requests[-1]
    assert (sent["action"], sent["force"], sent["timeout"]) == ("stop", True, 5)
    recorded = await pool.fetch(
        "SELECT subject, user_name, target, status FROM audit_log"
        " WHERE cluster = 'lon-a' AND method = 'PUT' ORDER BY id"
    )
    assert {(r["subject"], r["user_name"]) for r in recorded} == {("oscar", "Oscar Operator")}
    assert {r["target"] for r in recorded} == {"manager", "cluster"}

    # LXD's own failure shows as a failure, with LXD's words.
    await ui.goto(base_url(settings) + "/clusters/fra-b/instances")
    bad = row(ui, "bad")
    await bad.get_by_role("button", name="Actions for bad").click()
    await ui.get_by_role("menuitem", name="Start…").click()
    await ui.get_by_role("dialog").get_by_role("button", name="Start", exact=True).click()
    result = ui.locator("#change-result")
    await expect(result).to_contain_text("Could not start bad")
    await expect(result).to_contain_text("Failed to start instance 'bad'")
    await expect(row(ui, "web-2")).to_contain_text("project shop")

    # The settings are shown, not offered for change.
    await nav(ui).get_by_role("link", name="Settings").click()
    await expect(ui.get_by_text("Only administrators change settings.")).to_be_visible()
    await expect(ui.get_by_label("Memory warning threshold (%)")).not_to_be_editable()
    await expect(ui.get_by_role("button", name="Save settings")).to_have_count(0)


async def test_viewer_sees_everything_and_is_offered_no_change(ui, settings, fleet):
    await signed_in_as(ui, settings, "alice")
    await expect(ui.locator("#user-role")).to_have_text("Viewer")

    await nav(ui).get_by_role("link", name="Clusters", exact=True).click()
    await expect(row(ui, "lon-a")).to_be_visible()
    await expect(ui.get_by_role("checkbox")).to_have_count(0)
    await expect(ui.get_by_role("link", name="Enrol a cluster")).to_have_count(0)
    await row(ui, "lon-a").get_by_role("button", name="Actions for lon-a").click()
    await expect(ui.get_by_role("menuitem")).to_have_text(["Open", "Instances"])
    await ui.get_by_role("menuitem", name="Instances").click()

    await expect(row(ui, "web-1")).to_contain_text("Running", timeout=SLOW)
    await expect(ui.get_by_role("button", name=re.compile("^Actions for"))).to_have_count(0)
    await expect(ui.get_by_role("button", name=re.compile("^(Evacuate|Restore)"))).to_have_count(0)
    await expect(ui.locator("#open-lxd-ui")).to_have_count(0)

    await nav(ui).get_by_role("link", name="Instances").click()
    await expect(row(ui, "web-3")).to_contain_text("Frozen", timeout=SLOW)
    await expect(ui.get_by_role("checkbox")).to_have_count(0)
    await expect(ui.get_by_role("group", name="Selected instances")).to_have_count(0)

    await ui.goto(base_url(settings) + "/clusters/lon-a")
    await expect(ui.locator("#details")).to_be_visible()
    await expect(ui.locator("#settings")).to_have_count(0)
    await expect(ui.locator("#danger")).to_have_count(0)

    await ui.goto(base_url(settings) + "/enrol")
    await expect(
        ui.get_by_text("Only administrators create and revoke join tokens.")
    ).to_be_visible()
    await expect(ui.get_by_role("button", name="Create join token")).to_have_count(0)
    await ui.goto(base_url(settings) + "/audit")
    await expect(ui.get_by_text("Only administrators read the audit log.")).to_be_visible()
    await ui.goto(base_url(settings) + "/settings")
    await expect(ui.get_by_label("Storage warning threshold (%)")).not_to_be_editable()


async def test_admin_evacuates_a_member_sees_warnings_and_opens_the_lxd_ui(ui, settings, fleet):
    lxds, _ = fleet
    await signed_in_as(ui, settings, "admin")
    await expect(ui.locator("#user-role")).to_have_text("Administrator")
    await ui.goto(base_url(settings) + "/clusters/lon-a/instances")

    link = ui.locator("#open-lxd-ui")
    await expect(link).to_have_attribute("href", "/lxd-ui/lon-a/")
    await expect(link).to_have_attribute("target", "_blank")
    warnings = ui.locator("#lxd-warnings")
    await expect(warnings).to_contain_text("Couldn't find the CGroup blkio")
    # Text, never markup.
    await expect(warnings).to_contain_text("disk I/O limits will be ignored <b>here</b>")
    await expect(warnings).to_contain_text("3 times")

    members = ui.locator("#members-table")
    await members.get_by_role("button", name="Evacuate m1").click()
    dialog = ui.get_by_role("dialog")
    await expect(dialog).to_contain_text("Evacuate m1?")
    await dialog.get_by_role("button", name="Evacuate member").click()
    await expect(ui.locator("#change-result")).to_contain_text("Evacuated m1.")
    await expect(members.locator("tr[data-member=m1]")).to_contain_text("Evacuated")
    assert lxds["lon-a"].members["m1"].status == "Evacuated"
    # Its instance moved to the other member.
    await expect(row(ui, "web-1")).to_contain_text("m2")
    await members.get_by_role("button", name="Restore m1").click()
    await ui.get_by_role("dialog").get_by_role("button", name="Restore member").click()
    await expect(members.locator("tr[data-member=m1]")).to_contain_text("Online")

    # Without a tunnel: the exact command, copyable; the LXD UI is not offered.
    await ui.goto(base_url(settings) + "/clusters/dark/instances")
    notice = ui.locator(".tunnel-notice")
    await expect(notice).to_contain_text("Tunnel not connected")
    await expect(notice.locator("#tunnel-command")).to_have_text(TUNNEL_COMMAND)
    await expect(
        notice.get_by_role("button", name="Copy the command enabling the reverse tunnel")
    ).to_be_visible()
    await expect(ui.locator("#open-lxd-ui")).to_be_disabled()
    await (
        ui.get_by_role("navigation", name="Cluster views")
        .get_by_role("link", name="Overview")
        .click()
    )
    await expect(ui.locator("#details-tunnel-command")).to_have_text(TUNNEL_COMMAND)
    await expect(ui.locator("#open-lxd-ui")).to_be_disabled()


async def test_fleet_search_partial_results_and_bulk_change_with_a_dropped_tunnel(
    ui, settings, fleet, pool
):
    lxds, tunnels = fleet
    await signed_in_as(ui, settings, "oscar")
    await nav(ui).get_by_role("link", name="Instances").click()
    await expect(ui.get_by_role("heading", level=1, name="Instances")).to_be_visible()

    rows = ui.locator("#fleet-instances tbody tr")
    await expect(rows).to_have_count(5, timeout=SLOW)
    assert [await r.get_attribute("data-instance") for r in await rows.all()] == [
        "web-3",
        "web-2",
        "bad",
        "web-1",
        "db-1",
    ]
    unanswered = ui.locator("#unanswered")
    await expect(unanswered).to_contain_text("1 of 4 clusters did not answer")
    await expect(unanswered.locator("li[data-cluster=down]")).to_contain_text("502")
    await expect(ui.locator("#instances-summary")).to_contain_text(
        "5 instances on 3 of 4 connected clusters"
    )

    await ui.get_by_label("Status").select_option("Running")
    await expect(rows).to_have_count(2)
    assert "status=Running" in ui.url
    await ui.get_by_label("Status").select_option("")
    await ui.get_by_label("Type").select_option("virtual-machine")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("db-1")
    await ui.get_by_label("Type").select_option("")
    await ui.get_by_label("Project").fill("shop")
    await ui.get_by_label("Project").press("Enter")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("web-2")
    await ui.get_by_label("Project").fill("")
    await ui.get_by_label("Project").press("Enter")
    await ui.get_by_label("Search instances by name").fill("web")
    await expect(rows).to_have_count(3)
    await ui.get_by_label("Search instances by name").fill("")
    await expect(rows).to_have_count(5)

    for name, cluster in (("web-1", "lon-a"), ("bad", "fra-b"), ("web-3", "ams-c")):
        await ui.get_by_role("checkbox", name=f"Select {name} on {cluster}").check()
    await expect(ui.locator("#selection-count")).to_have_text("3 selected")
    # ams-c's tunnel drops before the change is confirmed.
    await tunnels["ams-c"].close()

    async def dropped() -> bool:
        held = await pool.fetchval(
            "SELECT count(*) FROM remote_cluster_tunnels t JOIN remote_clusters c"
            " ON c.id = t.cluster_id WHERE c.name = 'ams-c'"
        )
        return held == 0

    await wait_until(dropped)
    await (
        ui.get_by_role("group", name="Selected instances")
        .get_by_role("button", name="Restart…")
        .click()
    )
    dialog = ui.get_by_role("dialog")
    await expect(dialog).to_contain_text("Restart 3 instances?")
    await expect(dialog.locator(".dialog-names li")).to_have_count(3)
    await dialog.get_by_role("button", name="Restart", exact=True).click()

    result = ui.locator("#bulk-result")
    await expect(result).to_contain_text("Restarted 1 of 3 instances; 2 failed")
    failed = result.get_by_role("list", name="Failed")
    await expect(failed.locator("li[data-instance=bad]")).to_contain_text(
        "Failed to restart instance 'bad'"
    )
    await expect(failed.locator("li[data-instance=web-3]")).to_contain_text("Failed")
    await expect(failed.locator("li[data-instance=web-3]")).to_contain_text(
        re.compile("tunnel|not connected", re.I)
    )
    await result.locator("summary").click()
    await expect(result.get_by_role("list", name="Done").locator("li")).to_have_text(
        re.compile("web-1 on lon-a")
    )
    assert lxds["lon-a"].state_requests[-1]["action"] == "restart"
    # The failed ones stay selected, to try again.
    await expect(ui.locator("#selection-count")).to_have_text("2 selected")


async def test_audit_page_filters_by_user_cluster_and_time_and_pages(ui, settings, server, pool):
    oscar = Actor(subject="oscar", name="Oscar Operator")
    ada = Actor(subject="admin", name="Ada Admin")
    for n in range(70):
        who = oscar if n % 2 else ada
        async with audit.recorded(
            pool,
            who,
            "manager",
            f"site-{n % 3}",
            "PUT",
            f"/1.0/remote-cluster/site-{n % 3}/x{n}",
            b"{}",
        ) as outcome:
            outcome.status, outcome.result = 200, "OK"
    async with audit.recorded(
        pool, oscar, "cluster", "site-9", "DELETE", "/1.0/instances/<img src=x>", None
    ) as outcome:
        outcome.status, outcome.result = 403, "not allowed <b>here</b>"

    await signed_in_as(ui, settings, "admin")
    await nav(ui).get_by_role("link", name=re.compile("Audit")).click()
    rows = ui.locator("#audit-table tbody tr")
    await expect(rows).to_have_count(50)
    first = rows.first
    await expect(first).to_contain_text("DELETE /1.0/instances/<img src=x>")
    await expect(first).to_contain_text("403 not allowed <b>here</b>")
    await expect(first).to_contain_text("Oscar Operator")
    await expect(first).to_contain_text("to the cluster\N{RIGHT SINGLE QUOTATION MARK}s LXD")
    await expect(first.get_by_role("link", name="site-9")).to_have_attribute(
        "href", "/clusters/site-9"
    )
    await ui.get_by_role("button", name="Older").click()
    # 71 recorded here, and this admin's own sign-in made none (reads are not recorded).
    await expect(rows).to_have_count(21)
    assert "before=" in ui.url
    await expect(ui.get_by_role("button", name="Older")).to_be_disabled()
    await ui.get_by_role("button", name="Newest").click()
    await expect(rows).to_have_count(50)

    await ui.get_by_label("User").fill("Oscar Operator")
    await ui.get_by_label("Cluster").fill("site-1")
    await ui.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(12)
    for text in await rows.all_text_contents():
        assert "Oscar Operator" in text, text
        assert "site-1" in text, text
    assert "user=Oscar+Operator" in ui.url
    assert "cluster=site-1" in ui.url

    await ui.get_by_label("From (UTC)").fill("2099-01-01T00:00")
    await ui.get_by_role("button", name="Apply").click()
    await expect(ui.locator("#audit-summary")).to_have_text("No entries")
    await expect(ui.get_by_text("No recorded calls match the filters.")).to_be_visible()
    await ui.get_by_label("From (UTC)").fill("")
    await ui.get_by_label("Until (UTC)").fill("2000-01-01T00:00")
    await ui.get_by_role("button", name="Apply").click()
    await expect(ui.locator("#audit-summary")).to_have_text("No entries")


async def test_fleet_page_without_connected_clusters_gives_the_tunnel_command(
    ui, settings, server, enrolled
):
    cluster = await enrolled(server, "no-tunnel")
    await cluster.heartbeat()
    await signed_in_as(ui, settings, "alice")
    await nav(ui).get_by_role("link", name="Instances").click()

    await expect(ui.locator("#instances-summary")).to_have_text("No connected clusters")
    await expect(ui.locator("#tunnel-command")).to_have_text(TUNNEL_COMMAND)
    await expect(
        ui.get_by_role("button", name="Copy the command enabling the reverse tunnel")
    ).to_be_visible()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390px"])
async def test_management_pages_do_not_overflow(browser, server, settings, fleet, viewport):
    context, page, problems = await new_page(browser, viewport)
    await signed_in_as(page, settings, "admin")
    found: dict[str, list[str]] = {}

    async def measure(label: str) -> None:
        sticking_out = await overflow(page)
        if sticking_out:
            found[label] = sticking_out

    await measure("navigation with every section")
    await page.goto(base_url(settings) + "/clusters/lon-a/instances")
    await expect(row(page, "web-1")).to_be_visible(timeout=SLOW)
    await expect(page.locator("#lxd-warnings li")).to_have_count(1)
    await measure("cluster instances")
    await page.get_by_role("button", name="Actions for web-1").click()
    await page.get_by_role("menuitem", name="Restart…").click()
    await measure("state change dialog")
    await page.get_by_role("dialog").get_by_role("button", name="Restart", exact=True).click()
    await expect(page.locator("#change-result")).to_contain_text("Restarted web-1.")
    await measure("change result")
    await page.goto(base_url(settings) + "/clusters/dark/instances")
    await expect(page.locator(".tunnel-notice")).to_be_visible()
    await measure("tunnel not connected")
    await page.goto(base_url(settings) + "/clusters/dark")
    await expect(page.locator("#details-tunnel-command")).to_be_visible()
    await measure("cluster detail without a tunnel")
    await page.goto(base_url(settings) + "/instances")
    await expect(page.locator("#fleet-instances tbody tr")).to_have_count(5, timeout=SLOW)
    await measure("fleet instances with a cluster not answering")
    await page.get_by_role("checkbox", name=re.compile("^Select the 5 instances")).check()
    await page.get_by_role("button", name="Stop…").click()
    await measure("bulk dialog")
    await page.get_by_role("dialog").get_by_role("button", name="Stop", exact=True).click()
    await expect(page.locator("#bulk-result")).to_contain_text("failed")
    await measure("bulk result")
    await page.get_by_label("Search instances by name").fill("nothing-like-this")
    await expect(page.locator("#fleet-instances tbody tr")).to_have_count(0)
    await measure("fleet instances, none found")
    await page.goto(base_url(settings) + "/audit")
    await expect(page.locator("#audit-table tbody tr").first).to_be_visible()
    await measure("audit log")
    await context.close()
    assert not found, found
    assert not problems.unexpected(), problems.unexpected()


async def test_screenshots_of_the_management_pages(browser, server, settings, fleet):
    context, page, problems = await new_page(browser, DESKTOP)
    await signed_in_as(page, settings, "admin")
    await page.goto(base_url(settings) + "/clusters/lon-a/instances")
    await expect(row(page, "web-1")).to_be_visible(timeout=SLOW)
    await expect(page.locator("#lxd-warnings li")).to_have_count(1)
    await screenshot(page, "cluster-instances", full_page=True)
    await page.get_by_role("button", name="Actions for web-1").click()
    await page.get_by_role("menuitem", name="Stop…").click()
    await screenshot(page, "cluster-instances-stop")
    await page.get_by_role("dialog").get_by_role("button", name="Stop", exact=True).click()
    await expect(page.locator("#change-result")).to_contain_text("Stopped web-1.")

    await page.goto(base_url(settings) + "/clusters/dark/instances")
    await expect(page.locator(".tunnel-notice")).to_be_visible()
    await screenshot(page, "cluster-tunnel-not-connected")

    await page.goto(base_url(settings) + "/instances")
    await expect(page.locator("#fleet-instances tbody tr")).to_have_count(5, timeout=SLOW)
    for name, cluster in (("bad", "fra-b"), ("web-3", "ams-c"), ("web-2", "fra-b")):
        await page.get_by_role("checkbox", name=f"Select {name} on {cluster}").check()
    await page.get_by_role("button", name="Start…", exact=True).click()
    await page.get_by_role("dialog").get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#bulk-result")).to_contain_text("1 failed")
    await screenshot(page, "instances", full_page=True)

    await page.goto(base_url(settings) + "/audit")
    await expect(page.locator("#audit-table tbody tr").first).to_be_visible()
    saved = await screenshot(page, "audit", full_page=True)
    await context.close()

    narrow, page, narrow_problems = await new_page(browser, PHONE)
    await signed_in_as(page, settings, "oscar")
    await page.goto(base_url(settings) + "/instances")
    await expect(page.locator("#fleet-instances tbody tr")).to_have_count(5, timeout=SLOW)
    await screenshot(page, "instances-narrow")
    await narrow.close()
    assert saved.stat().st_size > 10_000, saved
    for found in (problems, narrow_problems):
        assert not found.unexpected(), found.unexpected()
