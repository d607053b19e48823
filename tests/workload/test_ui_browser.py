"""The web UI in a real browser (Debian's Chromium driven by Playwright).

Signed in through the real test identity provider, against a running server on PostgreSQL with
simulated clusters that joined with real tokens over mutual TLS.

The screenshots in docs/ come from test_screenshots_of_every_page:
CLUSTER_MANAGER_SCREENSHOTS=docs uv run --group test pytest tests/workload/test_ui_browser.py
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from cluster_manager import tokens
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.management.sessions import SESSION_COOKIE
from cluster_manager.seed import SET_LAST_HEARTBEAT, insert_fleet
from oidc_fixtures import USERS
from playwright.async_api import Browser, Page, Route, async_playwright
from ui_browser import NARROW, base_url, expect, launch, new_page, screenshot, sign_in

GRAFANA = "https://grafana.example.test"
# What a busy 2-core machine may need for what normally shows at once (ms, as Playwright takes).
SLOW = 30_000
DASHBOARD = "mcm-cluster"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the test session."""
    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        yield chromium
        await chromium.close()


@pytest.fixture
def settings(make_settings, oidc_settings):
    """The server signs people in at the test IdP and knows a Grafana."""
    return make_settings(**oidc_settings, grafana_url=GRAFANA, grafana_dashboard_uid=DASHBOARD)


@pytest.fixture
async def ui(browser, server, settings) -> AsyncIterator[Page]:
    """A fresh browser page on the running server; fails the test on any script or CSP error."""
    context, page, problems = await new_page(browser)
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    await context.close()
    assert not problems.unexpected(), "\n".join(problems.unexpected())


async def admin(page: Page, settings) -> Page:
    """Sign in as the administrator and wait for the overview."""
    await sign_in(page, settings, "admin", USERS["admin"]["password"])
    await expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
    return page


async def enrol(pool, settings, name: str, *, description: str = "", beats: int = 1):
    """A simulated cluster enrolled with a token from the service, after ``beats`` heartbeats."""
    token, _ = await tokens.create_token(pool, settings, name, description, timedelta(hours=1))
    cluster = SimulatedCluster(name)
    await cluster.join(token.encode())
    for _ in range(beats):
        await cluster.heartbeat()
    return cluster


async def make_stale(pool, name: str, ago: timedelta) -> None:
    """Pretend the cluster's last heartbeat arrived ``ago``."""
    cluster_id = await pool.fetchval("SELECT id FROM remote_clusters WHERE name = $1", name)
    await pool.execute(SET_LAST_HEARTBEAT, cluster_id, ago)


async def test_signed_out_visitor_sees_sign_in_and_no_data(ui, settings):
    await ui.goto(base_url(settings) + "/clusters")

    await expect(ui.get_by_role("heading", level=1)).to_have_text("MicroCloud Cluster Manager")
    await expect(ui.get_by_role("link", name="Sign in")).to_have_attribute("href", "/oidc/login")
    await expect(ui.get_by_role("navigation", name="Main")).to_be_hidden()


async def test_signing_in_returns_to_the_page_asked_for(ui, settings):
    await ui.goto(base_url(settings) + "/enrol")
    await ui.get_by_role("link", name="Sign in").click()
    await ui.get_by_label("Username").fill("admin")
    await ui.get_by_label("Password").fill(USERS["admin"]["password"])
    await ui.get_by_role("button", name="Sign in").click()

    await expect(ui.get_by_role("heading", level=1, name="Enrol a cluster")).to_be_visible()
    assert ui.url == base_url(settings) + "/enrol"
    await expect(ui.get_by_text("Ada Admin")).to_be_visible()


async def test_user_outside_the_admin_group_sees_not_authorised(ui, settings):
    await sign_in(ui, settings, "alice", USERS["alice"]["password"])

    heading = ui.get_by_role("heading", level=1)
    await expect(heading).to_have_text("You are not authorised to use the Cluster Manager")
    await expect(ui.get_by_text("Alice Viewer").first).to_be_visible()
    await expect(ui.get_by_text("Your groups: viewers")).to_be_visible()
    await expect(ui.get_by_role("navigation", name="Main")).to_be_hidden()


async def test_enrol_from_the_ui_then_the_cluster_joins_and_reports(ui, settings, pool):
    await admin(ui, settings)
    await (
        ui.get_by_role("navigation", name="Main")
        .get_by_role("link", name="Enrol a cluster")
        .click()
    )
    await expect(ui.get_by_role("heading", level=1)).to_be_focused()
    await ui.get_by_label("Cluster name").fill("edge-lab")
    await ui.get_by_label("Description (optional)").fill("Lab <b>rack</b> 3")
    await ui.get_by_label("Token expires after").select_option("7d")
    await ui.get_by_role("button", name="Create join token").click()

    await expect(ui.get_by_role("heading", name="Join token for edge-lab")).to_be_visible()
    token = (await ui.locator("#join-token").text_content() or "").strip()
    command = (await ui.locator("#join-command").text_content() or "").strip()
    assert command == f"microcloud cluster-manager join {token}"
    pending = ui.locator("#pending-tokens")
    await expect(pending.get_by_role("row", name=re.compile("edge-lab"))).to_be_visible()

    cluster = SimulatedCluster("ignored")
    await cluster.join(token)
    payload = cluster.status.next()
    await cluster.heartbeat(payload)
    running = sum(s["count"] for s in payload["instance_statuses"] or [])

    await ui.get_by_role("link", name="Clusters", exact=True).click()
    row = ui.get_by_role("row", name=re.compile("edge-lab"))
    await expect(row).to_contain_text("Healthy")
    await expect(row).to_contain_text(str(running))
    await expect(row.get_by_role("meter", name="Memory of edge-lab")).to_be_visible()
    await expect(row).to_contain_text(re.compile(r"just now|\d+ s ago"))
    # The description is text, never markup.
    await expect(row).to_contain_text("Lab <b>rack</b> 3")
    await ui.get_by_role("link", name="Enrol a cluster").first.click()
    await expect(ui.locator("#pending-tokens")).to_contain_text("No pending tokens.")


async def test_filter_search_sort_and_page_through_the_fleet(ui, settings, pool):
    await insert_fleet(pool, 2500, prefix="fleet-")
    await enrol(pool, settings, "zulu-edge")
    await admin(ui, settings)
    await ui.goto(base_url(settings) + "/clusters")

    await expect(ui.locator("#clusters-summary")).to_have_text(
        "Showing 1\N{EN DASH}25 of 2,501 clusters"
    )
    await ui.get_by_role("button", name="Next").click()
    await expect(ui.locator("#clusters-summary")).to_have_text(
        "Showing 26\N{EN DASH}50 of 2,501 clusters"
    )
    assert "page=2" in ui.url

    await ui.get_by_label("Search clusters by name").fill("zulu")
    await expect(ui.locator("#clusters-summary")).to_have_text(
        "Showing 1\N{EN DASH}1 of 1 cluster matching the filters"
    )
    await expect(ui.get_by_role("row", name=re.compile("zulu-edge"))).to_be_visible()

    await ui.get_by_label("Search clusters by name").fill("")
    stale = ui.get_by_role("radio", name=re.compile("^Stale"))
    await stale.click()
    await expect(stale).to_have_attribute("aria-checked", "true")
    rows = ui.locator("tbody tr")
    await expect(rows.first).to_contain_text("Stale")
    for text in await rows.all_text_contents():
        assert "Stale" in text, text
    assert "health=stale" in ui.url

    await ui.get_by_role("radio", name=re.compile("^All")).click()
    name_header = ui.get_by_role("columnheader", name=re.compile("Name"))
    await name_header.get_by_role("button").click()
    await expect(name_header).to_have_attribute("aria-sort", "descending")
    await expect(rows.first).to_contain_text("zulu-edge")


async def test_detail_threshold_warning_links_and_validation(ui, settings, pool):
    cluster = await enrol(pool, settings, "edge-7", description="Edge site 7")
    await admin(ui, settings)
    await ui.goto(base_url(settings) + "/clusters")
    await ui.get_by_role("link", name="edge-7").click()

    await expect(ui.get_by_role("heading", level=1, name="edge-7")).to_be_focused()
    await expect(ui.get_by_text("Edge site 7").first).to_be_visible()
    lxd = ui.get_by_role("link", name=re.compile("LXD UI"))
    await expect(lxd).to_have_attribute("href", cluster.status.next()["ui_url"] + "/")
    await expect(lxd).to_have_attribute("rel", "noopener noreferrer")
    grafana = ui.get_by_role("link", name=re.compile("Grafana"))
    await expect(grafana).to_have_attribute("href", f"{GRAFANA}/d/{DASHBOARD}?var-cluster=edge-7")
    await expect(ui.locator("#storage")).to_contain_text("micro01")
    await expect(ui.locator("#chart-instances")).to_contain_text("Running")

    ui.problems.allow("status of 400")  # type: ignore[attr-defined]
    threshold = ui.get_by_label("Memory warning threshold (%)")
    await threshold.fill("150")
    await ui.get_by_role("button", name="Save changes").click()
    await expect(ui.locator("#cluster-memory-threshold-error")).to_contain_text("memory_threshold")
    await expect(threshold).to_have_attribute("aria-invalid", "true")

    await threshold.fill("1")
    await ui.get_by_role("button", name="Save changes").click()
    await expect(ui.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    await expect(
        ui.get_by_text(re.compile(r"memory usage .* above the 1% threshold"))
    ).to_be_visible()
    await expect(ui.get_by_text("Warning", exact=True).first).to_be_visible()


async def test_revoke_a_token_and_remove_a_cluster(ui, settings, pool):
    await tokens.create_token(pool, settings, "never-joins", "spare", timedelta(hours=2))
    await enrol(pool, settings, "to-remove")
    await admin(ui, settings)

    await ui.goto(base_url(settings) + "/enrol")
    await ui.get_by_role("button", name="Revoke the token for never-joins").click()
    dialog = ui.get_by_role("dialog", name="Revoke the token for never-joins?")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await dialog.get_by_role("button", name="Revoke token").click()
    await expect(ui.locator("#pending-tokens")).to_contain_text("No pending tokens.")
    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_tokens") == 0

    await ui.goto(base_url(settings) + "/clusters/to-remove")
    await ui.get_by_role("button", name="Remove cluster…").click()
    dialog = ui.get_by_role("dialog", name="Remove to-remove?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    assert await pool.fetchval("SELECT count(*) FROM remote_clusters") == 1

    await ui.get_by_role("button", name="Remove cluster…").click()
    await ui.get_by_role("dialog").get_by_role("button", name="Remove cluster").click()
    await expect(ui.get_by_role("heading", level=1, name="Clusters")).to_be_visible()
    await expect(ui.get_by_text("No clusters are enrolled yet.")).to_be_visible()
    assert await pool.fetchval("SELECT count(*) FROM remote_clusters") == 0


async def test_sign_out_ends_the_session(ui, settings):
    await admin(ui, settings)
    await ui.get_by_role("button", name="Sign out").click()  # a POST with the CSRF token
    await expect(ui).to_have_url(re.compile(r"/session/end"))
    await ui.get_by_role("button", name="Sign out").click()  # the identity provider asks
    await ui.goto(base_url(settings) + "/")

    await expect(ui.get_by_role("link", name="Sign in")).to_be_visible()
    cookies = {c["name"] for c in await ui.context.cookies(base_url(settings))}
    assert SESSION_COOKIE not in cookies, cookies


async def test_clusters_page_refreshes_on_its_own(ui, settings, pool):
    await ui.clock.install()
    await enrol(pool, settings, "edge-1")
    await admin(ui, settings)
    await ui.get_by_role("link", name="Clusters", exact=True).click()
    await expect(ui.locator("tbody tr")).to_have_count(1)

    await enrol(pool, settings, "edge-2")
    await ui.clock.fast_forward(10_000)
    await expect(ui.locator("tbody tr")).to_have_count(1)
    await ui.clock.fast_forward(21_000)

    await expect(ui.get_by_role("row", name=re.compile("edge-2"))).to_be_visible()


async def test_api_failure_shows_a_clear_message_and_recovers(ui, settings, pool):
    await enrol(pool, settings, "edge-1")
    await admin(ui, settings)
    await ui.context.set_offline(True)
    ui.problems.allow("ERR_INTERNET_DISCONNECTED")  # type: ignore[attr-defined]
    # Even during the first load (a busy machine), the click is not lost: it runs after it.
    await ui.get_by_role("button", name="Refresh").click()

    alert = ui.get_by_role("alert")
    await expect(alert).to_contain_text("Cannot reach the Cluster Manager", timeout=SLOW)
    await ui.context.set_offline(False)
    await alert.get_by_role("button", name="Try again").click()
    await expect(ui.get_by_role("alert")).to_have_count(0, timeout=SLOW)


async def test_refresh_clicked_during_a_load_runs_after_it(ui, settings, pool):
    await enrol(pool, settings, "edge-1")
    await ui.clock.install()
    await admin(ui, settings)
    await expect(ui.get_by_text(re.compile(r"^Updated "))).to_be_visible(timeout=SLOW)
    # Stop the page's clock: no periodic refresh (every 30 s) may stand in for the lost click.
    await ui.clock.pause_at(datetime.now(UTC) + timedelta(seconds=5))
    held = asyncio.Event()
    seen = [asyncio.Event(), asyncio.Event()]  # the first and the second overview request
    requests: list[str] = []

    async def hold(route: Route) -> None:
        requests.append(route.request.url)
        seen[min(len(requests), 2) - 1].set()
        if len(requests) == 1:
            await held.wait()
        await route.continue_()

    await ui.route("**/1.0/overview", hold)
    refresh = ui.get_by_role("button", name="Refresh")
    await refresh.click()
    async with asyncio.timeout(SLOW / 1000):
        await seen[0].wait()  # a load in flight, held by the route
    await refresh.click()  # asked for meanwhile: not dropped
    held.set()

    async with asyncio.timeout(SLOW / 1000):
        await seen[1].wait()
    await expect(ui.get_by_role("alert")).to_have_count(0)
    assert len(requests) == 2


async def test_unknown_cluster_page_says_so(ui, settings):
    await admin(ui, settings)
    ui.problems.allow("status of 404")  # type: ignore[attr-defined]
    await ui.goto(base_url(settings) + "/clusters/nowhere")

    await expect(ui.get_by_text("This cluster is not enrolled.")).to_be_visible()
    await expect(ui.get_by_text("no cluster named 'nowhere'")).to_be_visible()


async def test_keyboard_reaches_the_navigation_and_the_health_filter(ui, settings, pool):
    await enrol(pool, settings, "edge-1")
    await admin(ui, settings)
    await ui.keyboard.press("Tab")
    await expect(ui.get_by_role("link", name="Skip to main content")).to_be_focused()

    await ui.goto(base_url(settings) + "/clusters")
    all_filter = ui.get_by_role("radio", name=re.compile("^All"))
    await all_filter.focus()
    await ui.keyboard.press("ArrowRight")
    healthy = ui.get_by_role("radio", name=re.compile("^Healthy"))
    await expect(healthy).to_be_focused()
    await expect(healthy).to_have_attribute("aria-checked", "true")


async def test_screenshots_of_every_page(browser, server, settings, pool):
    """Realistic fleet: twelve simulated clusters, some over thresholds, stale or pending."""
    names = [
        ("lon-edge-01", "London edge, rack A"),
        ("lon-edge-02", "London edge, rack B"),
        ("fra-core", "Frankfurt core services"),
        ("ams-lab", "Amsterdam lab"),
        ("nyc-retail-14", "New York store 14"),
        ("nyc-retail-22", "New York store 22"),
        ("sfo-ci", "CI runners"),
        ("tok-edge", "Tokyo edge"),
        ("syd-backup", "Sydney backup site"),
        ("par-media", "Paris media cache"),
        ("ber-factory", "Berlin factory floor"),
    ]
    for name, description in names:
        await enrol(pool, settings, name, description=description, beats=3)
    await enrol(pool, settings, "gru-new", description="São Paulo, joining", beats=0)
    await make_stale(pool, "syd-backup", timedelta(hours=5))
    await make_stale(pool, "tok-edge", timedelta(minutes=12))
    await pool.execute(
        "UPDATE remote_clusters SET memory_threshold = 30 WHERE name = ANY($1)",
        ["fra-core", "nyc-retail-22"],
    )
    await pool.execute(
        "UPDATE remote_clusters SET disk_threshold = 40 WHERE name = ANY($1)", ["sfo-ci"]
    )
    await tokens.create_token(pool, settings, "osl-edge", "Oslo, to be installed", None)

    context, page, problems = await new_page(browser)
    await admin(page, settings)
    await expect(page.locator("#warnings")).to_contain_text("syd-backup")
    await screenshot(page, "overview", full_page=True)

    await page.get_by_role("link", name="Clusters", exact=True).click()
    await expect(page.locator("tbody tr")).to_have_count(12)
    await screenshot(page, "clusters", full_page=True)

    await page.get_by_role("link", name="fra-core").click()
    await expect(page.locator("#storage")).to_contain_text("micro01")
    await screenshot(page, "cluster-detail", full_page=True)

    await page.get_by_role("link", name="Enrol a cluster").first.click()
    await page.get_by_label("Cluster name").fill("mad-edge")
    await page.get_by_label("Description (optional)").fill("Madrid edge")
    await page.get_by_role("button", name="Create join token").click()
    await expect(page.locator("#join-token")).not_to_be_empty()
    await screenshot(page, "enrol", full_page=True)
    await context.close()

    narrow, page, narrow_problems = await new_page(browser, NARROW)
    await admin(page, settings)
    await page.get_by_role("link", name="Clusters", exact=True).click()
    await expect(page.locator("tbody tr")).to_have_count(12)
    await screenshot(page, "clusters-narrow")
    await narrow.close()

    signed_out, page, out_problems = await new_page(browser)
    await page.goto(base_url(settings) + "/")
    await expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    await screenshot(page, "sign-in")
    await signed_out.close()

    others, page, other_problems = await new_page(browser)
    await sign_in(page, settings, "alice", USERS["alice"]["password"])
    await expect(page.get_by_role("heading", level=1)).to_contain_text("not authorised")
    saved = await screenshot(page, "not-authorised")
    await others.close()
    assert saved.stat().st_size > 10_000, saved
    for found in (problems, narrow_problems, out_problems, other_problems):
        assert not found.unexpected(), found.unexpected()
