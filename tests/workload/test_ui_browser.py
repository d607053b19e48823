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
from cluster_manager.seed import GIB, SET_LAST_HEARTBEAT, heartbeat, insert_cluster, insert_fleet
from oidc_fixtures import USERS
from playwright.async_api import Page, Route
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

GRAFANA = "https://grafana.example.test"
# What a busy 2-core machine may need for what normally shows at once (ms, as Playwright takes).
SLOW = 30_000
DASHBOARD = "mcm-cluster"


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
    await alert.get_by_role("button", name="Retry").click()
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
    attention = ui.get_by_role("radio", name=re.compile("^Needs attention"))
    await expect(attention).to_be_focused()
    await expect(attention).to_have_attribute("aria-checked", "true")
    await ui.keyboard.press("ArrowRight")
    healthy = ui.get_by_role("radio", name=re.compile("^Healthy"))
    await expect(healthy).to_be_focused()
    await expect(healthy).to_have_attribute("aria-checked", "true")


async def test_unknown_paths_show_the_uis_own_page_not_found(ui, settings):
    await admin(ui, settings)
    ui.problems.allow("status of 404")  # type: ignore[attr-defined]
    for path in ("/no-such-page", "/clusters/"):
        await ui.goto(base_url(settings) + path)

        await expect(ui.get_by_role("heading", level=1, name="Page not found")).to_be_visible()
        await expect(ui.get_by_role("navigation", name="Main")).to_be_visible()
        assert "{" not in (await ui.locator("body").text_content() or "")
    await ui.get_by_role("link", name="Go to the overview").click()
    await expect(ui.get_by_role("heading", level=1, name="Overview")).to_be_visible()


async def seed_fleet(pool, settings, clusters: int) -> None:
    """A fleet with a mix of problems: insert_fleet's, plus Error instances on some."""
    await insert_fleet(pool, clusters, prefix="site-")
    await pool.execute(
        """
        UPDATE remote_cluster_details
        SET instance_statuses = instance_statuses || jsonb_build_array(
            jsonb_build_object('status', 'Error', 'count', 1 + cluster_id % 4))
        WHERE cluster_id % 23 = 0
        """
    )
    await enrol(pool, settings, "edge-with-a-rather-long-name-for-a-cluster-01", beats=2)
    # Every status LXD knows, with counts of four to seven digits, in one cluster's charts.
    statuses = ["Running", "Stopped", "Frozen", "Error", "Starting", "Stopping", "Aborting"]
    await insert_cluster(
        pool,
        "many-statuses",
        heartbeat(
            instances={s: 10 ** (3 + i % 5) + 7 for i, s in enumerate(statuses)},
            members={"Online": 12_345, "Offline": 1_234, "Evacuated": 99_999, "Blocked": 1},
        ),
    )


PAGES_MEASURED = (
    "/",
    "/clusters",
    "/clusters?sort=cpu_load_1&order=desc",
    "/clusters?health=stale,warning&search=site-0000",
    "/clusters/site-000023",
    "/clusters/edge-with-a-rather-long-name-for-a-cluster-01",
    "/clusters/many-statuses",
    "/enrol",
    # Without tunnels: the fleet search finds no connected cluster and says how to connect one;
    # a cluster's Instances tab says its tunnel is not connected (test_ui_manage.py measures
    # them with tunnels).
    "/instances",
    "/clusters/site-000023/instances",
    "/audit",
    "/no-such-page",
)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390px"])
async def test_nothing_overflows_at_1280_and_390(browser, server, settings, pool, viewport):
    await seed_fleet(pool, settings, 400)
    context, page, problems = await new_page(browser, viewport)
    problems.allow("status of 404")
    await admin(page, settings)
    found = {}
    for path in PAGES_MEASURED:
        await page.goto(base_url(settings) + path)
        await expect(page.locator("#page-title")).to_be_visible()
        await expect(page.locator("[aria-busy]")).to_have_count(0, timeout=SLOW)
        await expect(page.locator(".loading")).to_have_count(0, timeout=SLOW)
        if path.startswith("/clusters") and "/" not in path[1:]:
            await expect(page.locator("tbody tr").first).to_be_visible(timeout=SLOW)
        sticking_out = await overflow(page)
        if sticking_out:
            found[path] = sticking_out
    await context.close()
    assert not found, found
    assert not problems.unexpected(), problems.unexpected()


async def test_the_overflow_measure_sees_what_sticks_out(browser, server, settings, pool):
    """The measure above can fail: a wide table, a cut label and a big total are each caught."""
    await seed_fleet(pool, settings, 30)
    context, page, _ = await new_page(browser, PHONE)
    await admin(page, settings)
    await expect(page.locator("#chart-health .legend li").first).to_be_visible()
    assert await overflow(page) == []
    await page.evaluate(
        """() => {
          const label = document.querySelector('.legend-label');
          label.style.cssText = 'white-space:nowrap;overflow:hidden;width:1px;display:block';
          document.querySelector('.donut-total').setAttribute('font-size', '60');
          document.querySelector('.stat').style.width = '900px';
        }"""
    )
    found = "\n".join(await overflow(page))
    assert "document" in found, found
    assert "is cut short" in found, found
    assert "crosses its ring" in found, found
    await context.close()


async def test_wide_table_shows_every_column_at_1280(browser, server, settings, pool):
    await seed_fleet(pool, settings, 60)
    context, page, _ = await new_page(browser, DESKTOP)
    await admin(page, settings)
    await page.goto(base_url(settings) + "/clusters?sort=cpu_load_1&order=desc")
    await expect(page.locator("tbody tr")).to_have_count(25)

    card = await page.locator(".table-card").bounding_box()
    assert card
    for name in ("Name", "Health", "Instances", "Memory", "Storage", "CPU load", "Last heartbeat"):
        header = page.get_by_role("columnheader", name=re.compile(f"^{name}"))
        box = await header.bounding_box()
        assert box, name
        assert card["x"] <= box["x"], name
        assert box["x"] + box["width"] <= card["x"] + card["width"], name
    await expect(page.get_by_role("columnheader", name=re.compile("CPU load"))).to_have_attribute(
        "aria-sort", "descending"
    )
    await context.close()


async def test_detail_page_is_one_column_on_a_phone(browser, server, settings, pool):
    await seed_fleet(pool, settings, 30)
    context, page, _ = await new_page(browser, PHONE)
    await admin(page, settings)
    await page.goto(base_url(settings) + "/clusters/site-000023")
    await expect(page.locator("#details")).to_be_visible()

    main = await page.locator("#main").bounding_box()
    assert main
    lefts = set()
    for card in await page.locator("#main .card").all():
        box = await card.bounding_box()
        assert box
        lefts.add(round(box["x"]))
        assert box["width"] > main["width"] * 0.8, box
    assert len(lefts) == 1, lefts
    fingerprint = await page.locator(".fingerprint").bounding_box()
    line = await page.locator(".fingerprint").evaluate(
        "e => parseFloat(getComputedStyle(e).lineHeight)"
    )
    assert fingerprint
    assert fingerprint["width"] > 200, fingerprint  # not one character per line
    assert fingerprint["height"] <= 5 * line + 10, fingerprint  # 64 hex digits in a few lines
    await context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390px"])
async def test_fingerprint_wraps_in_a_few_lines(browser, server, settings, pool, viewport):
    await enrol(pool, settings, "edge-1")
    context, page, _ = await new_page(browser, viewport)
    await admin(page, settings)
    await page.goto(base_url(settings) + "/clusters/edge-1")
    fingerprint = page.locator(".fingerprint")
    await expect(fingerprint).to_be_visible()

    line = await fingerprint.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
    box = await fingerprint.bounding_box()
    assert box
    assert box["height"] <= 4 * line + 10, (box, line)  # 64 hex digits: at most 4 lines
    text = (await fingerprint.text_content() or "").strip()
    assert len(text) == 64, text  # whole, with no spaces added
    await context.close()


async def test_sorting_on_a_phone_with_the_sort_menu(browser, server, settings, pool):
    await seed_fleet(pool, settings, 40)
    context, page, _ = await new_page(browser, PHONE)
    await admin(page, settings)
    await page.get_by_role("link", name="Clusters", exact=True).click()
    await expect(page.locator("tbody tr").first).to_be_visible()

    menu = page.get_by_label("Sort by")
    await expect(menu).to_be_visible()
    await menu.select_option(label="CPU load (highest first)")

    await expect(page).to_have_url(re.compile(r"sort=cpu_load_1&order=desc"))
    busiest = await page.evaluate(
        "fetch('/1.0/remote-cluster?sort=cpu_load_1&order=desc&limit=3')"
        ".then(r => r.json()).then(e => e.metadata.clusters.map(c => c.name))"
    )
    names = page.locator("tbody tr td.cell-name a")
    await expect(names.nth(0)).to_have_text(busiest[0])
    assert (await names.all_text_contents())[:3] == busiest
    await expect(menu).to_have_value("cpu_load_1:desc")
    await context.close()


async def test_table_queries_do_not_refetch_the_overview(ui, settings, pool):
    await seed_fleet(pool, settings, 120)
    await admin(ui, settings)
    calls: list[str] = []
    ui.on(
        "request",
        lambda request: (
            calls.append(request.url.split("/1.0/", 1)[1]) if "/1.0/" in request.url else None
        ),
    )
    await ui.get_by_role("link", name="Clusters", exact=True).click()
    summary = ui.locator("#clusters-summary")
    await expect(summary).to_contain_text("of 122 clusters")
    await expect(ui.get_by_role("radio", name=re.compile("^All"))).to_contain_text("122")
    assert [c for c in calls if c.startswith("overview")] == ["overview"]

    await ui.get_by_role("radio", name=re.compile("^Stale")).click()
    await expect(summary).to_contain_text("matching the filters")
    await ui.get_by_role("radio", name=re.compile("^All")).click()
    await ui.get_by_role("button", name="Next").click()
    await expect(summary).to_contain_text("Showing 26")
    await ui.get_by_role("columnheader", name=re.compile("Memory")).get_by_role("button").click()
    await expect(ui).to_have_url(re.compile("sort=memory_usage_ratio"))
    before = len(calls)
    await ui.get_by_label("Search clusters by name").press_sequentially("site-00001", delay=20)
    await expect(summary).to_contain_text("of 10 clusters matching")

    typed = [c for c in calls[before:] if c.startswith("remote-cluster?")]
    assert len(typed) <= 2, typed  # one query after typing stops, not one per keystroke
    assert [c for c in calls if c.startswith("overview")] == ["overview"], calls

    async with ui.expect_request("**/1.0/overview"):
        await ui.get_by_role("button", name="Refresh").click()  # the counts may have changed
    assert calls.count("overview") == 2, calls


async def test_see_them_all_opens_a_filter_shown_as_active(ui, settings, pool):
    await seed_fleet(pool, settings, 300)
    await admin(ui, settings)
    await ui.locator("#warnings").get_by_role("link", name="See them all").click()

    attention = ui.get_by_role("radio", name=re.compile("^Needs attention"))
    await expect(attention).to_have_attribute("aria-checked", "true")
    chip = ui.locator("#active-filters [data-filter=health]")
    await expect(chip).to_contain_text("Health: Needs attention")
    rows = ui.locator("tbody tr")
    await expect(rows.first).to_be_visible()
    for text in await rows.all_text_contents():
        assert any(word in text for word in ("Stale", "Error", "Warning")), text

    await chip.get_by_role("button", name="Clear the health filter").click()
    await expect(ui.get_by_role("radio", name=re.compile("^All"))).to_have_attribute(
        "aria-checked", "true"
    )
    await expect(ui.locator("#active-filters")).to_be_empty()
    assert "health=" not in ui.url

    await ui.goto(base_url(settings) + "/clusters?health=pending,warning&search=site")
    await expect(ui.locator("#active-filters")).to_contain_text("Health: Warning or Pending")
    await expect(ui.locator("#active-filters")).to_contain_text("Name contains “site”")
    await ui.locator("#active-filters").get_by_role("button", name="Clear filters").click()
    await expect(ui.locator("#active-filters")).to_be_empty()
    assert "health=" not in ui.url
    assert "search=" not in ui.url


async def test_overview_warnings_are_grouped_by_reason_with_links(ui, settings, pool):
    await seed_fleet(pool, settings, 1000)
    await admin(ui, settings)
    warnings = ui.locator("#warnings")
    stale = warnings.locator("[data-reason=stale]")
    await expect(stale.get_by_role("heading", name="Not reporting")).to_be_visible()
    await expect(stale).to_contain_text("20 clusters")  # every 50th of 1,000 is stale
    await expect(stale.locator(".attention-item")).to_have_count(5)
    memory = warnings.locator("[data-reason=memory]")
    await expect(memory.locator(".attention-item")).to_have_count(5)
    first = await memory.locator(".attention-message").first.text_content()
    assert "94%" in (first or ""), first  # the worst first: insert_fleet tops out at 94 %
    box = await warnings.bounding_box()
    assert box
    assert box["height"] < 1600, box  # five per reason, not a hundred

    await stale.get_by_role("link", name=re.compile("^See all 20")).click()
    await expect(ui.get_by_role("radio", name=re.compile("^Stale"))).to_have_attribute(
        "aria-checked", "true"
    )
    await expect(ui.locator("#clusters-summary")).to_contain_text("of 20 clusters")


async def test_overview_says_how_old_its_figures_are(ui, settings, pool):
    """The summary every unit serves may be a few seconds old; the page says so (issue 19)."""
    await enrol(pool, settings, "edge-1")
    await admin(ui, settings)
    age = ui.locator("#overview-age")
    await expect(age).to_contain_text(re.compile(r"^Figures computed (just now|\d+ s ago)$"))
    shown = age.locator("time.relative-time")
    computed = datetime.fromisoformat(await shown.get_attribute("datetime") or "")
    assert abs((datetime.now(UTC) - computed).total_seconds()) < 60, computed
    assert await shown.get_attribute("title") == computed.strftime("%Y-%m-%d %H:%M:%S UTC")

    # Figures an hour old (as a unit's answer would carry them) read as such, exact on hover.
    hour_ago = datetime.now(UTC) - timedelta(hours=1)

    async def old(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        body["metadata"]["computed_at"] = hour_ago.isoformat()
        body["metadata"]["age_seconds"] = 3600.0
        await route.fulfill(response=response, json=body)

    await ui.route("**/1.0/overview", old)
    await ui.get_by_role("button", name="Refresh").click()
    await expect(age).to_have_text("Figures computed 1 h ago")
    await expect(shown).to_have_attribute("title", hour_ago.strftime("%Y-%m-%d %H:%M:%S UTC"))


async def test_failed_first_load_shows_an_error_with_retry_not_loading(ui, settings, pool):
    await enrol(pool, settings, "edge-1")
    await admin(ui, settings)
    ui.problems.allow("status of 500")  # type: ignore[attr-defined]

    async def fail(route: Route) -> None:
        await route.fulfill(
            status=500,
            content_type="application/json",
            body='{"type": "error", "error": "Internal server error", "error_code": 500}',
        )

    for path, pattern, shows in (
        ("/", "**/1.0/overview", "#chart-health"),
        ("/clusters", "**/1.0/remote-cluster?*", "tbody tr"),
        ("/clusters/edge-1", "**/1.0/remote-cluster/edge-1", "#details"),
        ("/enrol", "**/1.0/remote-cluster-join-token", "#pending-tokens .empty-state"),
    ):
        await ui.route(pattern, fail)
        await ui.goto(base_url(settings) + path)
        alert = ui.get_by_role("alert")
        await expect(alert).to_contain_text("Internal server error")
        await expect(ui.get_by_text(re.compile("Loading"))).to_have_count(0)
        await ui.unroute(pattern, fail)
        await alert.get_by_role("button", name="Retry").click()
        await expect(ui.locator(shows).first).to_be_visible()
        await expect(ui.get_by_role("alert")).to_have_count(0)


async def test_times_are_relative_with_the_absolute_time_on_hover(ui, settings, pool):
    await enrol(pool, settings, "edge-1")
    await make_stale(pool, "edge-1", timedelta(minutes=12))
    await tokens.create_token(pool, settings, "later", "", timedelta(hours=5))
    await admin(ui, settings)
    relative = re.compile(
        r"^(just now|\d+ s ago|\d+ min ago|\d+ h ago|\d+ days? ago|in \d+ (min|h|days))$"
    )
    iso = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
    for path in ("/", "/clusters", "/clusters/edge-1", "/enrol"):
        await ui.goto(base_url(settings) + path)
        times = ui.locator("#main time")
        await expect(times.first).to_be_visible()
        for time in await times.all():
            text = (await time.text_content() or "").strip()
            assert relative.match(text), (path, text)
            assert iso.match(await time.get_attribute("title") or ""), path
    await ui.goto(base_url(settings) + "/clusters")
    await expect(ui.get_by_role("row", name=re.compile("edge-1"))).to_contain_text("12 min ago")


async def test_relative_times_move_on_between_refreshes(ui, settings, pool):
    await enrol(pool, settings, "edge-1")
    await ui.clock.install()
    await admin(ui, settings)
    updated = ui.locator(".refresh-time")
    await expect(updated).to_have_text("Updated just now", timeout=SLOW)
    requests: list[str] = []
    ui.on("request", lambda request: requests.append(request.url))

    await ui.clock.run_for(20_000)  # past a tick (15 s), before the next refresh (30 s)

    await expect(updated).to_have_text(re.compile(r"^Updated (1[5-9]|2\d) s ago$"))
    assert not [url for url in requests if "/1.0/" in url], requests


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
    await pool.execute(
        """
        UPDATE remote_cluster_details SET member_statuses =
            '[{"status": "Online", "count": 1}, {"status": "Offline", "count": 2}]',
            member_count = 3
        WHERE cluster_id = (SELECT id FROM remote_clusters WHERE name = 'ber-factory')
        """
    )

    context, page, problems = await new_page(browser, DESKTOP)
    await admin(page, settings)
    await expect(page.locator("#warnings")).to_contain_text("syd-backup")
    await screenshot(page, "overview", full_page=True)

    await page.get_by_role("link", name="Clusters", exact=True).click()
    await expect(page.locator("tbody tr")).to_have_count(12)
    await screenshot(page, "clusters", full_page=True)
    for name in ("ams-lab", "nyc-retail-14", "nyc-retail-22"):
        await page.get_by_role("checkbox", name=f"Select {name}").check()
    await page.get_by_role("button", name="Change thresholds…").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Memory warning threshold: what to do").select_option("set")
    await dialog.get_by_role("spinbutton", name="Memory warning threshold (%)").fill("85")
    await screenshot(page, "clusters-bulk-thresholds")
    await dialog.get_by_role("button", name="Apply thresholds").click()
    await expect(page.locator("#bulk-result")).to_contain_text("Changed the thresholds of 3")
    await page.get_by_role("checkbox", name="Select ams-lab").check()
    await page.get_by_role("button", name="Actions for ams-lab").click()
    await screenshot(page, "clusters-selection")
    await page.keyboard.press("Escape")
    await page.get_by_role("link", name="Settings").click()
    await expect(page.get_by_label("Memory warning threshold (%)")).to_have_value("80")
    await screenshot(page, "settings", full_page=True)
    await page.get_by_role("link", name="Clusters", exact=True).click()

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

    narrow, page, narrow_problems = await new_page(browser, PHONE)
    await admin(page, settings)
    await page.get_by_role("link", name="Clusters", exact=True).click()
    await expect(page.locator("tbody tr")).to_have_count(12)
    await screenshot(page, "clusters-narrow")
    await page.get_by_role("link", name="fra-core").click()
    await expect(page.locator("#details")).to_be_visible()
    await screenshot(page, "cluster-detail-narrow")
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


async def test_screenshots_of_a_fleet_of_10000_clusters(browser, server, settings, pool):
    """10,000 clusters with stale ones, members offline, instances in Error, full pools.

    The same measure of the layout as test_nothing_overflows_at_1280_and_390, at fleet scale.
    """
    await seed_fleet(pool, settings, 10_000)
    context, page, problems = await new_page(browser, DESKTOP)
    await admin(page, settings)
    await expect(page.locator("#chart-health")).to_contain_text("10k")
    await expect(page.locator("#warnings [data-reason=stale]")).to_contain_text("200 clusters")
    assert await overflow(page) == []
    await screenshot(page, "fleet-overview", full_page=True)

    await page.goto(base_url(settings) + "/clusters?health=stale,error,warning&sort=health")
    await expect(page.locator("tbody tr")).to_have_count(25)
    await expect(page.locator("#active-filters")).to_contain_text("Needs attention")
    assert await overflow(page) == []
    await screenshot(page, "fleet-clusters")

    # Every cluster in error says why in the API's words; 100 of them change thresholds at once.
    await page.goto(base_url(settings) + "/clusters?health=error&limit=100")
    await expect(page.locator("tbody tr")).to_have_count(100, timeout=SLOW)
    for words in await page.locator("tbody .cell-warning").all_text_contents():
        assert re.search(r"\d+ of \d+ (members Offline|Ceph members UNREACHABLE)", words), words
    await expect(page.locator("tbody .badge-error")).to_have_count(100)
    await page.get_by_role("checkbox", name="Select the 100 clusters on this page").check()
    await page.get_by_role("button", name="Change thresholds…").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Memory warning threshold: what to do").select_option("set")
    await dialog.get_by_role("spinbutton", name="Memory warning threshold (%)").fill("95")
    await dialog.get_by_role("button", name="Apply thresholds").click()
    await expect(page.locator("#bulk-result")).to_contain_text(
        "Changed the thresholds of 100 clusters", timeout=SLOW
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM remote_clusters WHERE memory_threshold = 95")
        == 100
    )
    assert await overflow(page) == []
    await context.close()
    assert not problems.unexpected(), problems.unexpected()


# Issue 15: the Management API's bulk actions, settings, filters and tokens, driven in the UI.


async def seeded(pool, *names: str, beat=None, **options) -> None:
    """Clusters with one heartbeat each (memory half used unless ``beat`` says otherwise)."""
    for name in names:
        await insert_cluster(pool, name, beat or heartbeat(memory=(8 * GIB, 16 * GIB)), **options)


async def test_a_cluster_partly_down_reads_error_with_the_apis_words(ui, settings, pool):
    await seeded(pool, "calm-1", "calm-2")
    await seeded(pool, "two-down", beat=heartbeat(members={"Online": 1, "Offline": 2}))
    await admin(ui, settings)

    legend = ui.locator("#chart-health .legend")
    await expect(legend.get_by_role("link", name=re.compile("^Error"))).to_be_visible()
    await expect(ui.locator("#warnings")).to_contain_text("2 of 3 members Offline")

    await ui.goto(base_url(settings) + "/clusters")
    row = ui.locator("tr[data-cluster=two-down]")
    await expect(row.locator(".badge-error")).to_have_text("Error")
    await expect(row.locator(".cell-warning")).to_contain_text("2 of 3 members Offline")
    error = ui.get_by_role("radio", name=re.compile("^Error"))
    await expect(error.locator(".segment-count")).to_have_text("1")
    await error.click()
    await expect(ui.locator("tbody tr")).to_have_count(1)
    assert "health=error" in ui.url
    await ui.get_by_role("radio", name=re.compile("^Needs attention")).click()
    await expect(ui.locator("tbody tr")).to_have_count(1)


async def test_bulk_remove_shows_each_result_and_the_one_removed_meanwhile(ui, settings, pool):
    await seeded(pool, "edge-a", "edge-b", "edge-c", "edge-d")
    await admin(ui, settings)
    await ui.goto(base_url(settings) + "/clusters")
    await expect(ui.locator("tbody tr")).to_have_count(4)
    for name in ("edge-a", "edge-b", "edge-c"):
        await ui.get_by_role("checkbox", name=f"Select {name}").check()
    await expect(ui.locator("#selection-count")).to_have_text("3 selected")
    # Another administrator removes one of them meanwhile.
    await pool.execute("DELETE FROM remote_clusters WHERE name = 'edge-b'")

    await ui.get_by_role("button", name="Remove…").click()
    dialog = ui.get_by_role("dialog", name="Remove 3 clusters?")
    await expect(dialog.locator(".dialog-names")).to_contain_text("edge-c")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await dialog.get_by_role("button", name="Remove 3 clusters").click()

    result = ui.locator("#bulk-result")
    await expect(result).to_contain_text("Removed 2 of 3 clusters; 1 failed")
    failed = result.get_by_role("list", name="Failed").get_by_role("listitem")
    await expect(failed).to_have_count(1)
    await expect(failed).to_contain_text("edge-b")
    await expect(failed).to_contain_text("Not found")
    await result.get_by_text("Done (2)").click()
    done = result.get_by_role("list", name="Done")
    await expect(done.get_by_role("listitem")).to_have_text(
        [re.compile("edge-a"), re.compile("edge-c")]
    )
    await expect(ui.locator("tbody tr")).to_have_count(1)
    await expect(ui.locator("#selection-count")).to_have_text("None selected")
    names = await pool.fetch("SELECT name FROM remote_clusters")
    assert [row["name"] for row in names] == ["edge-d"]


async def test_bulk_thresholds_on_a_page_of_100_selected_clusters(ui, settings, pool):
    await insert_fleet(pool, 150, prefix="fleet-")
    await admin(ui, settings)
    await ui.goto(base_url(settings) + "/clusters?limit=100")
    await expect(ui.locator("tbody tr")).to_have_count(100, timeout=SLOW)
    await ui.get_by_role("checkbox", name="Select the 100 clusters on this page").check()
    await expect(ui.locator("#selection-count")).to_have_text("100 selected")

    await ui.get_by_role("button", name="Change thresholds…").click()
    dialog = ui.get_by_role("dialog", name="Change the thresholds of 100 clusters")
    await expect(dialog.locator(".dialog-names")).to_contain_text("and 95 more")
    await dialog.get_by_role(
        "combobox", name="Memory warning threshold: what to do"
    ).select_option("set")
    await dialog.get_by_role("spinbutton", name="Memory warning threshold (%)").fill("101")
    await dialog.get_by_role("button", name="Apply thresholds").click()
    await expect(dialog).to_contain_text("give a whole percentage from 0 to 100")
    await dialog.get_by_role("spinbutton", name="Memory warning threshold (%)").fill("55")
    await dialog.get_by_role(
        "combobox", name="Storage warning threshold: what to do"
    ).select_option("default")
    await dialog.get_by_role("button", name="Apply thresholds").click()

    await expect(ui.locator("#bulk-result")).to_contain_text(
        "Changed the thresholds of 100 clusters", timeout=SLOW
    )
    set_rows = await pool.fetchval(
        "SELECT count(*) FROM remote_clusters"
        " WHERE memory_threshold = 55 AND disk_threshold IS NULL"
    )
    untouched = await pool.fetchval(
        "SELECT count(*) FROM remote_clusters WHERE memory_threshold IS NULL"
    )
    assert (set_rows, untouched) == (100, 50)


async def test_row_menu_opens_changes_thresholds_and_removes(ui, settings, pool):
    await seeded(pool, "menu-a", "menu-b")
    await admin(ui, settings)
    await ui.goto(base_url(settings) + "/clusters")
    await ui.get_by_role("button", name="Actions for menu-a").click()
    menu = ui.get_by_role("menu", name="Actions for menu-a")
    await expect(menu.get_by_role("menuitem")).to_have_text(
        ["Open", "Instances", "Change thresholds…", "Remove…"]
    )
    await ui.keyboard.press("Escape")
    await expect(menu).to_be_hidden()
    await expect(ui.get_by_role("button", name="Actions for menu-a")).to_be_focused()

    await ui.get_by_role("button", name="Actions for menu-a").click()
    await menu.get_by_role("menuitem", name="Change thresholds…").click()
    dialog = ui.get_by_role("dialog", name="Change the thresholds of menu-a")
    await dialog.get_by_role(
        "combobox", name="Storage warning threshold: what to do"
    ).select_option("set")
    await dialog.get_by_role("spinbutton", name="Storage warning threshold (%)").fill("70")
    await dialog.get_by_role("button", name="Apply thresholds").click()
    await expect(ui.locator("#bulk-result")).to_contain_text("Changed the thresholds of 1 cluster")
    assert (
        await pool.fetchval("SELECT disk_threshold FROM remote_clusters WHERE name = 'menu-a'")
        == 70
    )

    await ui.get_by_role("button", name="Actions for menu-b").click()
    await ui.get_by_role("menu").get_by_role("menuitem", name="Remove…").click()
    await (
        ui.get_by_role("dialog", name="Remove menu-b?")
        .get_by_role("button", name="Remove cluster")
        .click()
    )
    await expect(ui.locator("#bulk-result")).to_contain_text("Removed 1 cluster")
    await expect(ui.locator("tbody tr")).to_have_count(1)

    await ui.get_by_role("button", name="Actions for menu-a").click()
    await ui.get_by_role("menu").get_by_role("menuitem", name="Open").click()
    await expect(ui.get_by_role("heading", level=1, name="menu-a")).to_be_visible()
    await expect(ui.locator("#disk-threshold-source")).to_contain_text("70 % — cluster override")


async def test_settings_page_saves_defaults_the_list_and_detail_follow(ui, settings, pool):
    await seeded(pool, "follows-default")
    await seeded(pool, "own-threshold", memory_threshold=90)
    ui.problems.allow("status of 400")  # the refused value below
    await admin(ui, settings)
    await ui.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    await expect(ui.get_by_role("heading", level=1, name="Settings")).to_be_focused()
    memory = ui.get_by_label("Memory warning threshold (%)")
    await expect(memory).to_have_value("80")
    await expect(ui.locator("#stale-source")).to_contain_text("from each unit's configuration")

    await memory.fill("40")
    await ui.get_by_label("Join tokens expire after (hours)").fill("48")
    await ui.get_by_role("button", name="Save settings").click()
    await expect(ui.get_by_text("Saved. Every unit applies these from now on.")).to_be_visible()
    await expect(ui.locator("#expiry-source")).to_contain_text(
        "2 days; set here for the whole fleet"
    )
    row = await pool.fetchrow("SELECT memory_threshold, token_expiry FROM fleet_settings")
    assert (row["memory_threshold"], row["token_expiry"]) == (40, 48 * 3600)

    await ui.get_by_label("Storage warning threshold (%)").fill("150")
    await ui.get_by_role("button", name="Save settings").click()
    await expect(ui.locator("#settings-disk-threshold")).to_have_attribute("aria-invalid", "true")
    assert await pool.fetchval("SELECT disk_threshold FROM fleet_settings") == 80

    await ui.get_by_role("button", name="Use the units' configuration").click()
    await expect(ui.locator("#expiry-source")).to_contain_text("from each unit's configuration")
    assert await pool.fetchval("SELECT token_expiry FROM fleet_settings") is None

    await ui.goto(base_url(settings) + "/clusters")
    await expect(ui.locator("tr[data-cluster=follows-default] .badge")).to_have_text("Warning")
    await expect(ui.locator("tr[data-cluster=follows-default] .cell-warning")).to_contain_text(
        "40"
    )
    await expect(ui.locator("tr[data-cluster=own-threshold] .badge")).to_have_text("Healthy")

    await ui.goto(base_url(settings) + "/clusters/follows-default")
    await expect(ui.locator("#memory-threshold-source")).to_have_text(re.compile(r"^default 40 %"))
    await ui.goto(base_url(settings) + "/clusters/own-threshold")
    source = ui.locator("#memory-threshold-source")
    await expect(source).to_contain_text("90 % — cluster override")
    await source.get_by_role("button", name="Reset to default").click()
    await expect(source).to_have_text(re.compile(r"^default 40 %"))
    await expect(ui.locator(".stat .badge")).to_have_text("Warning")
    assert (
        await pool.fetchval(
            "SELECT memory_threshold FROM remote_clusters WHERE name = 'own-threshold'"
        )
        is None
    )


async def test_status_and_usage_filters_live_in_the_address_as_chips(ui, settings, pool):
    await seed_fleet(pool, settings, 200)
    expected = await pool.fetchval(
        """
        SELECT count(*) FROM remote_cluster_details
        WHERE instance_statuses @> '[{"status": "Error"}]' AND memory_usage_ratio >= 0.5
        """
    )
    assert expected > 0
    await admin(ui, settings)
    await ui.goto(base_url(settings) + "/clusters")
    await ui.locator("#more-filters summary").click()
    await ui.get_by_label("Instances in status").select_option("Error")
    await ui.get_by_label("Memory usage from (%)").fill("50")
    await ui.get_by_role("button", name="Apply filters").click()

    await expect(ui.locator("#clusters-summary")).to_contain_text(
        f"of {expected} cluster{'s' if expected != 1 else ''} matching"
    )
    assert "instance_status=Error" in ui.url
    assert "memory_min=0.5" in ui.url
    chips = ui.locator("#active-filters")
    await expect(chips.locator("[data-filter=instance_status]")).to_have_text(
        re.compile("Instances Error")
    )
    await expect(chips.locator("[data-filter=memory_min]")).to_have_text(
        re.compile("Memory usage at least 50 %")
    )

    await ui.reload()
    await expect(ui.locator("#clusters-summary")).to_contain_text(f"of {expected} cluster")
    await expect(chips.locator(".chip")).to_have_count(2)
    await expect(ui.get_by_label("Instances in status")).to_have_value("Error")

    await chips.get_by_role("button", name="Clear the instances filter").click()
    await expect(chips.locator(".chip")).to_have_count(1)
    assert "instance_status" not in ui.url
    await ui.goto(base_url(settings) + "/clusters?member_status=Offline&storage_max=0.2")
    await expect(chips.locator(".chip")).to_have_count(2)
    await expect(chips).to_contain_text("Members Offline")
    await expect(chips).to_contain_text("Fullest storage pool at most 20 %")
    await chips.get_by_role("button", name="Clear filters").click()
    await expect(chips).to_be_empty()
    assert "?" not in ui.url


async def test_pending_enrolments_show_on_the_clusters_page(ui, settings, pool):
    await seeded(pool, "already-here")
    await tokens.create_token(pool, settings, "coming-soon", "rack 4", timedelta(hours=5))
    await tokens.create_token(pool, settings, "too-late", "", timedelta(seconds=1))
    await asyncio.sleep(1.1)
    await admin(ui, settings)
    await ui.goto(base_url(settings) + "/clusters")
    panel = ui.locator("#pending-enrolments")
    await expect(panel.locator("summary")).to_have_text("Pending enrolments (1) · 1 expired")
    await panel.locator("summary").click()
    await expect(panel.locator("[data-token=coming-soon]")).to_contain_text("expires in 5 h")
    await expect(panel.locator("[data-token=too-late]")).to_contain_text("expired")
    await panel.get_by_role("link", name="Manage join tokens").click()
    await expect(ui.get_by_role("heading", level=1, name="Enrol a cluster")).to_be_visible()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390px"])
async def test_new_pages_and_states_do_not_overflow(browser, server, settings, pool, viewport):
    await seed_fleet(pool, settings, 300)
    await tokens.create_token(pool, settings, "pending-" + "x" * 50, "d" * 80, timedelta(hours=1))
    context, page, problems = await new_page(browser, viewport)
    await admin(page, settings)
    found: dict[str, list[str]] = {}

    async def measure(label: str) -> None:
        sticking_out = await overflow(page)
        if sticking_out:
            found[label] = sticking_out

    await page.goto(base_url(settings) + "/settings")
    await expect(page.get_by_label("Memory warning threshold (%)")).to_have_value("80")
    await measure("settings")
    await page.goto(
        base_url(settings)
        + "/clusters?instance_status=Error&member_status=Offline&memory_min=0.1&storage_max=0.9"
        + "&health=stale,error,warning&search=site"
    )
    await expect(page.locator("#active-filters .chip")).to_have_count(6)
    await expect(page.locator("#clusters-summary")).not_to_have_text(
        "Loading clusters…", timeout=SLOW
    )
    await measure("filters as chips")
    await page.goto(base_url(settings) + "/clusters")
    await expect(page.locator("tbody tr").first).to_be_visible(timeout=SLOW)
    await page.locator("#pending-enrolments summary").click()
    await page.locator("#more-filters summary").click()
    await measure("more filters and pending enrolments open")
    await page.get_by_role("checkbox", name=re.compile("^Select the 25 clusters")).check()
    await measure("page selected")
    await page.get_by_role("button", name="Change thresholds…").click()
    await measure("thresholds dialog")
    await page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    await page.locator("tbody tr").first.get_by_role("button", name=re.compile("^Actions")).click()
    await measure("row menu")
    await page.keyboard.press("Escape")
    await pool.execute("DELETE FROM remote_clusters WHERE name = 'site-000002'")
    await page.get_by_role("button", name="Remove…").click()
    await page.get_by_role("dialog").get_by_role("button", name=re.compile("^Remove 25")).click()
    await expect(page.locator("#bulk-result")).to_contain_text("Removed 24 of 25")
    await page.locator("#bulk-result summary").click()
    await measure("bulk result")
    await page.goto(base_url(settings) + "/clusters/site-000100")
    await expect(page.locator("#memory-threshold-source")).to_contain_text("default")
    await measure("detail with threshold source")
    await context.close()
    assert not found, found
    assert not problems.unexpected(), problems.unexpected()
