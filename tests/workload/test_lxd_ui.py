"""A cluster's own LXD UI through the manager (/lxd-ui/<cluster>/): files, calls, access, audit.

Against a running server with a simulated cluster whose tunnel answers from the in-memory
LXD (cluster_manager.fleet.lxd, with its small /ui/). The browser side is in
test_lxd_ui_browser.py.
"""

from __future__ import annotations

import pytest
from cluster_manager.fleet.lxd import UI_FILES, InMemoryLXD, Instance
from cluster_manager.tunnel import ENABLE_COMMAND
from oidc_fixtures import new_browser
from yarl import URL

ROLE_GROUPS = {"oidc_operator_group": "operators", "oidc_viewer_group": "viewers"}
BASE = "/lxd-ui/edge-1"


@pytest.fixture
def settings(make_settings, oidc_settings):
    return make_settings(**oidc_settings, **ROLE_GROUPS)


@pytest.fixture
async def lxd(server, enrolled, open_tunnel):
    """edge-1, its tunnel forwarding /ui/ as well as /1.0."""
    cluster = await enrolled(server, "edge-1")
    lxd = InMemoryLXD([Instance("web", "Running", "container", "m1")])
    await open_tunnel(cluster, lxd=lxd, forward_ui=True)
    return lxd


async def audit_rows(pool):
    rows = await pool.fetch(
        "SELECT user_name, target, cluster, method, path, status, result, finished_at"
        " FROM audit_log ORDER BY id"
    )
    return [dict(r) for r in rows]


async def test_opening_redirects_to_the_ui_whose_files_are_rewritten(
    settings, signed_in, lxd, pool
):
    admin = await signed_in(settings, "admin")

    async with admin.get(BASE + "/", allow_redirects=False) as response:
        assert (response.status, response.headers["Location"]) == (302, BASE + "/ui/")
    async with admin.get(BASE + "/ui/") as response:
        page = await response.text()
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    # The shim comes first; the UI's own /ui/ references now live under the cluster.
    assert page.index(f'<script src="{BASE}/_manager/lxd-ui-shim.js">') < page.index(
        f'src="{BASE}/ui/assets/index.js"'
    )
    assert f'href="{BASE}/ui/assets/ui.css"' in page
    assert '"/ui/' not in page
    async with admin.get(BASE + "/ui/assets/index.js") as response:
        script = await response.text()
        assert response.headers["Content-Type"].startswith("text/javascript")
    # API paths are not rewritten in the code (the shim routes them when they are used).
    assert script == UI_FILES["assets/index.js"][0].decode()
    async with admin.get(BASE + "/_manager/lxd-ui-shim.js") as response:
        assert "/1.0" in await response.text()
    assert ("GET", "/ui/") in lxd.requests
    entries = await audit_rows(pool)
    assert [
        (e["user_name"], e["target"], e["cluster"], e["path"], e["result"]) for e in entries
    ] == [("Ada Admin", "manager", "edge-1", BASE + "/ui/", "LXD UI opened")]


async def test_calls_reach_the_clusters_lxd_and_changes_are_audited(
    settings, signed_in, lxd, pool
):
    admin = await signed_in(settings, "admin")
    origin = str(admin._base_url).rstrip("/")

    async with admin.get(BASE + "/1.0/instances?recursion=1") as response:
        listed = await response.json()
    assert response.status == 200
    assert [(i["name"], i["status"]) for i in listed["metadata"]] == [("web", "Running")]
    async with admin.put(
        BASE + "/1.0/instances/web/state",
        json={"action": "stop", "timeout": 30},
        headers={"X-CSRF-Token": "", "Origin": origin},
    ) as response:
        changed = await response.json()
    assert (response.status, changed["type"]) == (202, "async")
    assert lxd.instances["web"].status == "Stopped"
    assert lxd.state_requests == [{"action": "stop", "timeout": 30}]
    entries = await audit_rows(pool)
    assert [
        (e["user_name"], e["target"], e["cluster"], e["method"], e["path"], e["status"])
        for e in entries
    ] == [("Ada Admin", "cluster", "edge-1", "PUT", "/1.0/instances/web/state", 202)]
    assert entries[0]["finished_at"] is not None


async def test_reads_are_audited_when_the_setting_asks(
    oidc_settings, start_server, signed_in, enrolled, open_tunnel, pool
):
    servers = await start_server(**oidc_settings, **ROLE_GROUPS, audit_read_calls=True)
    cluster = await enrolled(servers, "edge-1")
    await open_tunnel(cluster, forward_ui=True)
    admin = await signed_in(servers.settings, "admin")

    async with admin.get(BASE + "/1.0/instances") as response:
        assert response.status == 200
    async with admin.get(BASE + "/ui/assets/index.js") as response:
        assert response.status == 200
    entries = await audit_rows(pool)
    assert [(e["target"], e["method"], e["path"], e["status"]) for e in entries] == [
        ("cluster", "GET", "/1.0/instances", 200),
        ("cluster", "GET", "/ui/assets/index.js", 200),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-CSRF-Token": "", "Sec-Fetch-Site": "cross-site"},
        {"X-CSRF-Token": "", "Sec-Fetch-Site": "same-site"},
        {"X-CSRF-Token": "", "Origin": "https://evil.example"},
        {"X-CSRF-Token": ""},
        {"X-CSRF-Token": "wrong"},
    ],
)
async def test_changes_not_from_this_origin_are_refused(settings, signed_in, lxd, pool, headers):
    admin = await signed_in(settings, "admin")

    async with admin.put(
        BASE + "/1.0/instances/web/state", json={"action": "stop"}, headers=headers
    ) as response:
        body = await response.json()

    assert response.status == 403
    assert "this site's own pages" in body["error"]
    assert lxd.instances["web"].status == "Running"
    assert await audit_rows(pool) == []


@pytest.mark.parametrize("user", ["oscar", "alice"])
async def test_operators_and_viewers_are_refused(settings, signed_in, lxd, pool, user):
    client = await signed_in(settings, user)

    async with client.get(BASE + "/ui/") as response:
        page = await response.text()
        assert (response.status, response.headers["Content-Type"][:9]) == (403, "text/html")
    assert "only administrators may open a cluster&#x27;s LXD UI" in page
    async with client.get(BASE + "/1.0/instances") as response:
        assert response.status == 403
        assert "administrators" in (await response.json())["error"]
    async with client.put(BASE + "/1.0/instances/web/state", json={"action": "stop"}) as response:
        assert response.status == 403
    assert lxd.requests == []
    assert await audit_rows(pool) == []


async def test_signed_out_browser_is_told_to_sign_in(server, settings, lxd, idp):
    async with new_browser(settings, idp) as anonymous:
        async with anonymous.get(BASE + "/ui/") as response:
            page = await response.text()
        assert response.status == 401
        assert "href='/oidc/login'" in page
        async with anonymous.get(BASE + "/1.0/instances") as response:
            assert response.status == 401
    assert lxd.requests == []


async def test_tunnel_not_connected_page_names_the_command(
    server, settings, signed_in, enrolled, pool
):
    await enrolled(server, "edge-1")
    admin = await signed_in(settings, "admin")

    async with admin.get(BASE + "/ui/") as response:
        page = await response.text()
    assert response.status == 503
    assert f"<pre><code>{ENABLE_COMMAND}</code></pre>" in page
    async with admin.get(BASE + "/1.0/instances") as response:
        body = await response.json()
    assert response.status == 503
    assert ENABLE_COMMAND in body["error"]
    entries = await audit_rows(pool)  # the attempt to open it is recorded, with its refusal
    assert [(e["target"], e["status"]) for e in entries] == [("manager", 503)]


async def test_daemon_forwarding_only_api_paths_needs_the_ui_directory(
    server, settings, signed_in, enrolled, open_tunnel
):
    """The daemon at f26e73c0 answers 400 to /ui/ (cluster_manager_tunnel.go line 226)."""
    cluster = await enrolled(server, "edge-1")
    await open_tunnel(cluster)  # forward_ui off: as the daemon
    admin = await signed_in(settings, "admin")

    async with admin.get(BASE + "/ui/") as response:
        page = await response.text()

    assert response.status == 502
    assert "forwards only /1.0 API paths" in page
    assert "lxd_ui_directory" in page


async def test_ui_files_from_the_directory_calls_through_the_tunnel(
    oidc_settings, start_server, signed_in, enrolled, open_tunnel, tmp_path
):
    for name, (body, _) in UI_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(body)
    served = await start_server(**oidc_settings, **ROLE_GROUPS, lxd_ui_directory=str(tmp_path))
    cluster = await enrolled(served, "edge-1")
    lxd = InMemoryLXD([Instance("db", "Stopped")])
    await open_tunnel(cluster, lxd=lxd)  # as the daemon: /1.0 only
    admin = await signed_in(served.settings, "admin")

    async with admin.get(BASE + "/ui/") as response:
        assert response.status == 200
        assert f'src="{BASE}/ui/assets/index.js"' in await response.text()
    async with admin.get(BASE + "/ui/instances/db") as response:  # the app's own page path
        assert "<h1>LXD UI</h1>" in await response.text()
    async with admin.get(BASE + "/ui/nothing.js") as response:
        assert response.status == 404
    async with admin.get(BASE + "/ui/assets/..%2F..%2Fsecret.js") as response:
        assert response.status == 400
    async with admin.get(BASE + "/1.0/instances?recursion=1") as response:
        assert [i["name"] for i in (await response.json())["metadata"]] == ["db"]
    assert lxd.requests == [("GET", "/1.0/instances?recursion=1")]


async def test_websockets_and_odd_paths_are_refused(settings, signed_in, lxd):
    admin = await signed_in(settings, "admin")

    async with admin.get(
        BASE + "/1.0/instances/web/console",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    ) as response:
        assert response.status == 501
        assert "WebSocket" in (await response.json())["error"]
    for odd in ("/1.0//certificates", "/1.0/instances/%2e%2e/certificates"):
        async with admin.get(URL(BASE + odd, encoded=True)) as response:  # sent as written
            assert response.status == 400, odd
    assert lxd.requests == []
