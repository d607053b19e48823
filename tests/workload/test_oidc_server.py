"""Sign-in on the real Management API server, through the fixtures other tests use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from cluster_manager.settings import Settings


@pytest.fixture
def settings(make_settings: Callable[..., Settings], oidc_settings: dict[str, Any]) -> Settings:
    return make_settings(**oidc_settings)


async def test_admin_client_reads_the_fleet_and_configuration(server, admin_client):
    async with admin_client.get("/1.0/configuration") as response:
        body = await response.json()
        assert response.status == 200, body
    assert body["metadata"]["user"]["subject"] == "admin"
    assert body["metadata"]["user"]["is_admin"] is True
    assert body["metadata"]["csrf_token"] == admin_client.headers["X-CSRF-Token"]
    async with admin_client.get("/1.0/remote-cluster") as response:
        assert response.status == 200, await response.text()


async def test_admin_client_changes_state_with_the_csrf_header(server, admin_client):
    body = {"cluster_name": "csrf-checked", "description": "", "expiry": "1h"}
    async with admin_client.post("/1.0/remote-cluster-join-token", json=body) as response:
        assert response.status in (200, 201), await response.text()
    without = {"X-CSRF-Token": ""}
    body["cluster_name"] = "no-header"
    async with admin_client.post(
        "/1.0/remote-cluster-join-token", json=body, headers=without
    ) as response:
        assert response.status == 403, await response.text()


async def test_user_client_outside_the_admin_group_is_forbidden(server, user_client):
    async with user_client.get("/1.0/remote-cluster") as response:
        body = await response.json()
    assert response.status == 403
    assert "admins" in body["error"]


async def test_anonymous_calls_get_401_and_public_paths_stay_open(server, settings):
    connector = aiohttp.TCPConnector(ssl=False)
    async with aiohttp.ClientSession(settings.management_url, connector=connector) as http:
        async with http.get("/1.0/remote-cluster", allow_redirects=False) as response:
            assert response.status == 401
            assert (await response.json())["error_code"] == 401
        async with http.get("/1.0/configuration") as response:
            assert response.status == 200
            assert (await response.json())["metadata"]["user"] is None
        async with http.get("/health/live") as response:
            assert response.status == 200
        async with http.get("/oidc/login", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"].startswith(settings.oidc_issuer)
