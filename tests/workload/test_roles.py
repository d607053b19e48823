"""Roles (admin, operator, viewer) enforced on every operation of the OpenAPI document.

The matrix walks every signed-in operation the document lists and sends it as each role:
a role below the operation's ``x-required-role`` is refused with 403 naming the group needed
and changes nothing; a role at or above it gets past the guard (whatever the handler then
says about the made-up names and empty bodies).
"""

from __future__ import annotations

import re

import pytest
from cluster_manager.management import openapi
from cluster_manager.management.roles import allows, needed_role, role_of
from support import table_rows

ROLE_OF_USER = {"alice": "viewer", "oscar": "operator", "admin": "admin"}
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def signed_in_operations() -> list[tuple[str, str, str]]:
    """(method, path, role needed) of every operation that needs a signed-in user."""
    found = []
    for path, item in openapi.document()["paths"].items():
        for method in HTTP_METHODS:
            entry = item.get(method)
            if entry is None or entry.get("security") == []:
                continue
            found.append((method.upper(), path, entry["x-required-role"]))
    return found


def concrete(path: str) -> str:
    """The path with every parameter replaced by a made-up name."""
    return re.sub(r"\{[^}]+\}", "nosuchname", path)


@pytest.fixture
def settings(make_settings, oidc_settings):
    return make_settings(
        **oidc_settings, oidc_operator_group="operators", oidc_viewer_group="viewers"
    )


def test_every_signed_in_operation_declares_a_role():
    operations = signed_in_operations()

    assert operations
    assert {role for *_, role in operations} <= {"viewer", "operator", "admin"}
    # Removing clusters, creating tokens and changing settings stay with administrators.
    needs = {(method, path): role for method, path, role in operations}
    assert needs[("DELETE", "/1.0/remote-cluster/{name}")] == "admin"
    assert needs[("POST", "/1.0/remote-cluster-join-token")] == "admin"
    assert needs[("PATCH", "/1.0/settings")] == "admin"
    assert needs[("GET", "/1.0/remote-cluster")] == "viewer"


def test_roles_follow_the_configured_groups(make_settings):
    settings = make_settings(oidc_operator_group="ops", oidc_viewer_group="")

    assert role_of(("admins", "ops"), settings) == "admin"
    assert role_of(("ops",), settings) == "operator"
    assert role_of(("viewers",), settings) is None
    assert needed_role("GET", None) == "viewer"
    assert needed_role("DELETE", None) == "admin"
    assert not allows(None, "viewer")


@pytest.mark.parametrize("user", ["alice", "oscar", "admin"])
async def test_every_operation_is_refused_below_its_role(server, settings, signed_in, pool, user):
    client = await signed_in(settings, user)
    role = ROLE_OF_USER[user]
    async with client.get("/1.0/configuration") as response:
        assert (await response.json())["metadata"]["user"]["role"] == role

    for method, path, needed in signed_in_operations():
        before = await table_rows(pool)
        async with client.request(method, concrete(path), json={}) as response:
            text = await response.text()
            refused = response.status == 403 and "group" in text
        if allows(role, needed):
            assert not refused, (method, path, role, text)
        else:
            assert refused, (method, path, role, response.status, text)
            assert await table_rows(pool) == before, (method, path)


async def test_operator_cannot_remove_a_cluster_and_viewer_cannot_change_a_setting(
    server, settings, signed_in, pool
):
    await pool.execute(
        "INSERT INTO remote_clusters (name, certificate, fingerprint)"
        " VALUES ('alpha', 'x', repeat('a', 64))"
    )
    operator = await signed_in(settings, "oscar")
    viewer = await signed_in(settings, "alice")

    async with operator.delete("/1.0/remote-cluster/alpha") as response:
        assert response.status == 403
        assert "'admins'" in (await response.json())["error"]
    async with viewer.patch("/1.0/settings", json={"token_expiry": 3600}) as response:
        assert response.status == 403
    async with viewer.get("/1.0/remote-cluster") as response:
        assert response.status == 200
        names = [c["name"] for c in (await response.json())["metadata"]["clusters"]]
    assert names == ["alpha"]
