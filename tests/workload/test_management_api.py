"""The Management API over real HTTPS, signed in through a real OpenID provider, on PostgreSQL."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from cluster_manager import fleet_settings
from cluster_manager.join_token import JoinToken
from cluster_manager.seed import GIB, heartbeat, insert_cluster
from cluster_manager.server import Servers
from conftest import table_rows
from oidc_fixtures import new_browser


class Api:
    """An HTTPS client of one management server: answers are (status, envelope)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def request(self, method: str, path: str, **kwargs) -> tuple[int, dict]:
        async with self.session.request(method, self.base + path, **kwargs) as response:
            body = await response.read()
            assert response.content_type == "application/json", body
            return response.status, json.loads(body)

    async def ok(self, method: str, path: str, **kwargs):
        status, envelope = await self.request(method, path, **kwargs)
        assert status == 200, envelope
        assert envelope["type"] == "sync", envelope
        return envelope["metadata"]

    async def error(self, status: int, method: str, path: str, **kwargs) -> str:
        got, envelope = await self.request(method, path, **kwargs)
        assert got == status, envelope
        assert envelope["type"] == "error", envelope
        assert envelope["error_code"] == status, envelope
        return envelope["error"]


@pytest.fixture
def settings(make_settings, oidc_settings):
    """The server signs people in at the test identity provider."""
    return make_settings(**oidc_settings)


@pytest.fixture
def api(admin_client):
    """The running server, through a client signed in as an administrator."""
    return Api(admin_client, "")


@pytest.fixture
async def fleet(pool):
    await insert_cluster(pool, "alpha", heartbeat(memory=(1 * GIB, 16 * GIB)))
    await insert_cluster(pool, "bravo", heartbeat(memory=(15 * GIB, 16 * GIB)))
    await insert_cluster(pool, "charlie", heartbeat(), heartbeat_ago=timedelta(minutes=10))


async def test_list_answers_a_page_with_health_and_total(api, fleet):
    page = await api.ok("GET", "/1.0/remote-cluster", params={"sort": "name", "limit": "2"})

    assert [c["name"] for c in page["clusters"]] == ["alpha", "bravo"]
    assert page["total"] == 3
    assert page["limit"] == 2
    bravo = page["clusters"][1]
    assert bravo["health"] == "warning"
    assert bravo["warnings"][0]["kind"] == "memory"
    assert bravo["memory_total_amount"] == 16 * GIB
    assert bravo["instance_statuses"] == [
        {"status": "Running", "count": 3},
        {"status": "Stopped", "count": 1},
    ]


async def test_list_filters_by_health_and_search(api, fleet):
    stale = await api.ok("GET", "/1.0/remote-cluster", params={"health": "stale,warning"})
    found = await api.ok("GET", "/1.0/remote-cluster", params={"search": "HAR"})

    assert [c["name"] for c in stale["clusters"]] == ["bravo", "charlie"]
    assert [c["name"] for c in found["clusters"]] == ["charlie"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-3"}, "offset"),
        ({"sort": "secret"}, "sort"),
        ({"order": "sideways"}, "order"),
        ({"health": "sick"}, "health"),
        ({"health": ","}, "health"),
        ({"health": "warning,,stale"}, "health"),
        ({"status": "GONE"}, "status"),
        ({"search": "a" * 64}, "search"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_list_parameters_get_400_naming_them(api, params, field):
    message = await api.error(400, "GET", "/1.0/remote-cluster", params=params)

    assert message.startswith(field), message


async def test_repeated_parameter_is_refused(api):
    message = await api.error(400, "GET", "/1.0/remote-cluster?limit=1&limit=2")

    assert message == "limit must be given once"


async def test_show_patch_and_delete_a_cluster(api, pool, fleet):
    shown = await api.ok("GET", "/1.0/remote-cluster/alpha")
    assert shown["health"] == "healthy"

    changed = await api.ok(
        "PATCH",
        "/1.0/remote-cluster/alpha",
        json={"description": "rack 7", "memory_threshold": 5},
    )
    assert changed["description"] == "rack 7"
    assert changed["memory_threshold"] == 5
    assert changed["health"] == "warning"

    assert await api.ok("DELETE", "/1.0/remote-cluster/alpha") is None
    await api.error(404, "GET", "/1.0/remote-cluster/alpha")
    assert await pool.fetchval("SELECT count(*) FROM remote_clusters WHERE name='alpha'") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (json.dumps({"memory_threshold": 101}).encode(), "memory_threshold"),
        (json.dumps({"disk_threshold": -1}).encode(), "disk_threshold"),
        (json.dumps({"disk_threshold": "50"}).encode(), "disk_threshold"),
        (json.dumps({"disk_threshold": 50.0}).encode(), "disk_threshold"),
        (json.dumps({"description": 7}).encode(), "description"),
        (json.dumps({"description": "x" * 1025}).encode(), "description"),
        (json.dumps({"description": "ok", "name": "renamed"}).encode(), "name"),
        (json.dumps({}).encode(), "nothing to change"),
    ],
)
async def test_bad_patch_gets_400_naming_the_field_and_changes_nothing(
    api, pool, fleet, body, field
):
    before = await table_rows(pool)

    message = await api.error(400, "PATCH", "/1.0/remote-cluster/alpha", data=body)

    assert message.startswith(field), message
    assert await table_rows(pool) == before


async def test_unknown_cluster_is_404_for_every_method(api, fleet):
    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"description": "x"}}), ("DELETE", {})):
        message = await api.error(404, method, "/1.0/remote-cluster/zulu", **kwargs)
        assert message == "no cluster named 'zulu'"


async def test_oversized_body_is_refused(api, fleet):
    body = json.dumps({"description": "x" * 70_000}).encode()

    await api.error(413, "PATCH", "/1.0/remote-cluster/alpha", data=body)


async def test_token_is_created_listed_and_revoked(api, pool, settings):
    created = await api.ok(
        "POST",
        "/1.0/remote-cluster-join-token",
        json={"cluster_name": "edge-9", "description": "lab", "expiry": "2h"},
    )

    token = JoinToken.decode(created["token"])
    assert token.server_name == "edge-9"
    assert token.addresses == settings.connector_addresses
    assert created["command"] == f"microcloud cluster-manager join {created['token']}"
    assert created["name"] == "edge-9"
    assert created["description"] == "lab"
    remaining = token.expires_at - datetime.now(UTC)
    assert timedelta(minutes=119) < remaining <= timedelta(hours=2)
    listed = await api.ok("GET", "/1.0/remote-cluster-join-token")
    assert [(t["name"], t["expired"]) for t in listed] == [("edge-9", False)]
    assert created["token"] not in json.dumps(listed)
    secret = json.loads(base64.b64decode(created["token"]))["secret"]
    assert secret not in json.dumps(listed)

    assert await api.ok("DELETE", "/1.0/remote-cluster-join-token/edge-9") is None
    assert await api.ok("GET", "/1.0/remote-cluster-join-token") == []
    await api.error(404, "DELETE", "/1.0/remote-cluster-join-token/edge-9")


async def test_token_expiry_accepts_seconds(api, pool):
    await api.ok(
        "POST", "/1.0/remote-cluster-join-token", json={"cluster_name": "a", "expiry": 600}
    )

    seconds = await pool.fetchval(
        "SELECT extract(epoch FROM expires_at - created_at) FROM remote_cluster_tokens"
    )
    assert 599 <= seconds <= 601


async def test_token_name_taken_by_a_cluster_or_a_token_is_409(api, fleet):
    body = {"cluster_name": "fresh"}
    await api.ok("POST", "/1.0/remote-cluster-join-token", json=body)

    pending = await api.error(409, "POST", "/1.0/remote-cluster-join-token", json=body)
    enrolled = await api.error(
        409, "POST", "/1.0/remote-cluster-join-token", json={"cluster_name": "alpha"}
    )

    assert "join token" in pending
    assert "already enrolled" in enrolled


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "cluster_name"),
        ({"cluster_name": "bad name"}, "cluster_name"),
        ({"cluster_name": "x" * 64}, "cluster_name"),
        ({"cluster_name": 5}, "cluster_name"),
        ({"cluster_name": "ok", "description": ["x"]}, "description"),
        ({"cluster_name": "ok", "expiry": "soon"}, "expiry"),
        ({"cluster_name": "ok", "expiry": 5}, "expiry"),
        ({"cluster_name": "ok", "expiry": True}, "expiry"),
        ({"cluster_name": "ok", "secret": "mine"}, "secret"),
    ],
)
async def test_bad_token_request_gets_400_naming_the_field(api, pool, body, field):
    message = await api.error(400, "POST", "/1.0/remote-cluster-join-token", json=body)

    assert message.startswith(field), message
    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_tokens") == 0


async def test_overview_in_one_call(api, fleet):
    overview = await api.ok("GET", "/1.0/overview")

    assert overview["clusters"]["by_health"] == {
        "stale": 1,
        "error": 0,
        "warning": 1,
        "pending": 0,
        "healthy": 1,
    }
    assert overview["instances"]["total"] == 12
    assert overview["warnings"]["total"] == 2
    assert [c["name"] for c in overview["warnings"]["clusters"]] == ["charlie", "bravo"]


async def test_overview_takes_the_list_filters(api, fleet):
    warned = await api.ok("GET", "/1.0/overview", params={"health": "warning"})
    refused = await api.error(400, "GET", "/1.0/overview", params={"memory_min": "2"})

    assert warned["clusters"]["total"] == 1
    assert warned["memory"]["total"] == 16 * GIB
    assert [c["name"] for c in warned["warnings"]["clusters"]] == ["bravo"]
    assert refused.startswith("memory_min: ")


async def test_list_filters_by_member_status_and_usage_range(api, pool, fleet):
    await insert_cluster(pool, "delta", heartbeat(members={"Online": 1, "Offline": 2}))

    offline = await api.ok("GET", "/1.0/remote-cluster", params={"member_status": "Offline"})
    full = await api.ok(
        "GET", "/1.0/remote-cluster", params={"memory_min": "0.9", "memory_max": "1"}
    )
    refused = await api.error(400, "GET", "/1.0/remote-cluster", params={"memory_max": "-1"})

    assert [c["name"] for c in offline["clusters"]] == ["delta"]
    assert offline["clusters"][0]["health"] == "error"
    assert offline["clusters"][0]["warnings"][0]["message"] == "2 of 3 members Offline"
    assert [c["name"] for c in full["clusters"]] == ["bravo"]
    assert refused.startswith("memory_max: ")


async def test_configuration_names_connector_user_and_csrf_token(api, settings):
    configuration = await api.ok("GET", "/1.0/configuration")

    assert configuration["connector_addresses"] == list(settings.connector_addresses)
    assert configuration["grafana_url"] is None
    assert configuration["stale_after_seconds"] == 180
    assert configuration["user"]["subject"] == "admin"
    assert configuration["user"]["is_admin"] is True
    assert "admins" in configuration["user"]["groups"]
    assert configuration["csrf_token"] == api.session.headers["X-CSRF-Token"]


async def test_configuration_without_sign_in_has_no_user(server, settings, idp):
    browser = new_browser(settings, idp)
    async with browser, browser.get("/1.0/configuration") as response:
        configuration = (await response.json())["metadata"]

    assert response.status == 200
    assert configuration["user"] is None
    assert configuration["csrf_token"] is None
    assert configuration["connector_addresses"] == list(settings.connector_addresses)


async def test_configuration_shows_grafana_when_set(make_settings, oidc_settings, signed_in):
    settings = make_settings(**oidc_settings, grafana_url="https://grafana.example")
    servers = Servers(settings)
    await servers.start()
    try:
        client = await signed_in(settings)
        async with client.get("/1.0/configuration") as response:
            configuration = (await response.json())["metadata"]
    finally:
        await servers.stop()

    assert configuration["grafana_url"] == "https://grafana.example"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/1.0/remote-cluster"),
        ("GET", "/1.0/remote-cluster/alpha"),
        ("PATCH", "/1.0/remote-cluster/alpha"),
        ("DELETE", "/1.0/remote-cluster/alpha"),
        ("GET", "/1.0/overview"),
        ("GET", "/1.0/remote-cluster-join-token"),
        ("POST", "/1.0/remote-cluster-join-token"),
        ("DELETE", "/1.0/remote-cluster-join-token/alpha"),
        ("POST", "/1.0/remote-cluster/bulk/remove"),
        ("POST", "/1.0/remote-cluster/bulk/thresholds"),
        ("GET", "/1.0/settings"),
        ("PATCH", "/1.0/settings"),
    ],
)
async def test_api_needs_a_signed_in_administrator(
    server, settings, idp, signed_in, pool, fleet, method, path
):
    before = await table_rows(pool)
    viewer = await signed_in(settings, "alice")
    anonymous = new_browser(settings, idp)
    async with anonymous, anonymous.request(method, path, json={"description": "x"}) as response:
        assert response.status == 401, await response.text()
    async with viewer.request(method, path, json={"description": "x"}) as response:
        assert response.status == 403, await response.text()
        assert (await response.json())["type"] == "error"

    assert await table_rows(pool) == before


async def test_change_without_csrf_header_is_refused_and_changes_nothing(api, pool, fleet):
    before = await table_rows(pool)
    headers = {"X-CSRF-Token": "wrong"}

    await api.error(
        403, "PATCH", "/1.0/remote-cluster/alpha", json={"description": "x"}, headers=headers
    )
    await api.error(403, "DELETE", "/1.0/remote-cluster/alpha", headers=headers)
    await api.error(
        403,
        "POST",
        "/1.0/remote-cluster/bulk/remove",
        json={"names": ["alpha", "bravo"]},
        headers=headers,
    )
    await api.error(
        403,
        "POST",
        "/1.0/remote-cluster/bulk/thresholds",
        json={"names": ["alpha"], "memory_threshold": 5},
        headers=headers,
    )
    await api.error(403, "PATCH", "/1.0/settings", json={"disk_threshold": 5}, headers=headers)

    assert await table_rows(pool) == before


async def test_bulk_remove_answers_each_name_and_removes_the_known_ones(api, pool, fleet):
    result = await api.ok(
        "POST",
        "/1.0/remote-cluster/bulk/remove",
        json={"names": ["alpha", "zulu", "alpha", "no/such", "charlie"]},
    )

    assert [(r["name"], r["result"]) for r in result["results"]] == [
        ("alpha", "ok"),
        ("zulu", "not_found"),
        ("no/such", "error"),
        ("charlie", "ok"),
    ]
    assert result["results"][1]["message"] == "no cluster named 'zulu'"
    assert (result["succeeded"], result["failed"]) == (2, 2)
    left = await pool.fetch("SELECT name FROM remote_clusters ORDER BY name")
    assert [r["name"] for r in left] == ["bravo"]


async def test_bulk_thresholds_set_own_values_or_return_to_the_default(api, fleet):
    names = [f"c{i}" for i in range(498)] + ["alpha", "bravo"]
    result = await api.ok(
        "POST",
        "/1.0/remote-cluster/bulk/thresholds",
        json={"names": names, "memory_threshold": 95},
    )
    bravo = await api.ok("GET", "/1.0/remote-cluster/bravo")
    await api.ok(
        "POST",
        "/1.0/remote-cluster/bulk/thresholds",
        json={"names": ["bravo"], "memory_threshold": None},
    )
    reset = await api.ok("GET", "/1.0/remote-cluster/bravo")

    assert (result["succeeded"], result["failed"]) == (2, 498)
    assert (bravo["memory_threshold"], bravo["memory_threshold_source"]) == (95, "cluster")
    assert bravo["health"] == "healthy"
    assert (reset["memory_threshold"], reset["memory_threshold_source"]) == (80, "default")
    assert reset["health"] == "warning"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/1.0/remote-cluster/bulk/remove", {"names": []}, "names"),
        ("/1.0/remote-cluster/bulk/remove", {"names": ["a"] * 501}, "names"),
        (
            "/1.0/remote-cluster/bulk/remove",
            {"names": ["a"], "memory_threshold": 5},
            "memory_threshold: not a known",
        ),
        ("/1.0/remote-cluster/bulk/thresholds", {"names": ["alpha"]}, "memory_threshold"),
        ("/1.0/remote-cluster/bulk/thresholds", {"names": ["a"], "disk_threshold": 101}, "disk"),
        ("/1.0/settings", {}, "nothing to change"),
        ("/1.0/settings", {"stale_after_intervals": 0.5}, "stale_after_intervals"),
        ("/1.0/settings", {"token_expiry": 10}, "token_expiry"),
        ("/1.0/settings", {"memory_threshold": None}, "memory_threshold"),
    ],
)
async def test_bad_bulk_or_settings_change_is_refused_and_changes_nothing(
    api, pool, fleet, path, body, field
):
    before = await table_rows(pool)
    method = "PATCH" if path == "/1.0/settings" else "POST"

    message = await api.error(400, method, path, json=body)

    assert message.startswith(field), message
    assert await table_rows(pool) == before


async def test_settings_are_shared_by_every_unit_and_used_for_tokens(
    api, make_settings, pool, fleet
):
    shown = await api.ok("GET", "/1.0/settings")
    changed = await api.ok(
        "PATCH",
        "/1.0/settings",
        json={"disk_threshold": 5, "token_expiry": 3600, "stale_after_intervals": 2},
    )
    token = await api.ok("POST", "/1.0/remote-cluster-join-token", json={"cluster_name": "new"})
    alpha = await api.ok("GET", "/1.0/remote-cluster/alpha")
    other_unit = await fleet_settings.get_settings(pool, make_settings())

    assert shown["memory_threshold"] == 80
    assert shown["token_expiry_source"] == "config"
    assert changed["disk_threshold"] == 5
    assert (changed["token_expiry"], changed["token_expiry_source"]) == (3600, "settings")
    assert changed["stale_after_seconds"] == 2 * changed["heartbeat_interval"]
    lifetime = datetime.fromisoformat(token["expires_at"]) - datetime.now(UTC)
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1)
    assert (alpha["disk_threshold"], alpha["disk_threshold_source"]) == (5, "default")
    assert alpha["health"] == "warning"
    assert other_unit.disk_threshold == 5
    assert other_unit.token_expiry == 3600


async def test_openapi_document_is_served_without_sign_in(server, settings, idp):
    anonymous = new_browser(settings, idp)
    async with anonymous, anonymous.get("/openapi.json") as response:
        document = await response.json()

    assert response.status == 200
    assert document["openapi"].startswith("3.")
    assert "/1.0/overview" in document["paths"]
