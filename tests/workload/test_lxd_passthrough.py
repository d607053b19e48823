"""The raw LXD pass-through: an allow-list of calls, admin only, changes in the audit log.

``/1.0/remote-cluster/{name}/lxd/{path}`` is LXD's ``/1.0/{path}``.
"""

from __future__ import annotations

import pytest
from cluster_manager.fleet.lxd import InMemoryLXD, Instance
from cluster_manager.passthrough import allowed, rules_for
from cluster_manager.settings import SettingsError

ROLE_GROUPS = {"oidc_operator_group": "operators", "oidc_viewer_group": "viewers"}
BASE = "/1.0/remote-cluster/edge-1/lxd"


@pytest.fixture
def settings(make_settings, oidc_settings):
    return make_settings(
        **oidc_settings, **ROLE_GROUPS, lxd_passthrough_allow_extra=("DELETE /1.0/instances/*",)
    )


@pytest.fixture
async def lxd(server, enrolled, open_tunnel):
    cluster = await enrolled(server, "edge-1")
    lxd = InMemoryLXD([Instance("web", "Running", "container", "m1")])
    await open_tunnel(cluster, lxd=lxd)
    return lxd


async def answer(client, method: str, path: str, **kwargs) -> tuple[int, dict]:
    async with client.request(method, path, **kwargs) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/1.0", True),
        ("GET", "/1.0/instances", True),
        ("GET", "/1.0/instances/web/state", True),
        ("GET", "/1.0/cluster/members/m1", True),
        ("GET", "/1.0/operations/abc/wait", True),
        ("PUT", "/1.0/instances/web/state", True),
        ("POST", "/1.0/cluster/members/m1/state", True),
        ("GET", "/1.0/instances/web/files", False),
        ("GET", "/1.0/instances/web/console", False),
        ("POST", "/1.0/instances/web/exec", False),
        ("GET", "/1.0/certificates", False),
        ("PUT", "/1.0/instances/web", False),
        ("DELETE", "/1.0/instances/web", False),
        ("PUT", "/1.0/instances/web/state/x", False),
        ("GET", "/1.0/instances/../certificates", False),
        ("GET", "/1.0//certificates", False),
    ],
)
def test_built_in_rules_allow_reads_and_state_changes_only(method, path, expected):
    assert allowed(rules_for(()), method, path) is expected


def test_extra_rules_widen_and_bad_ones_are_refused(make_settings):
    rules = rules_for(("DELETE /1.0/instances/*", "* /1.0/images/**"))

    assert allowed(rules, "DELETE", "/1.0/instances/web")
    assert allowed(rules, "POST", "/1.0/images/abc/refresh")
    assert not allowed(rules, "DELETE", "/1.0/instances/web/snapshots/s1")
    for bad in ("DELETE instances", "HEAD /1.0/x", "GET /1.0/**/x", "GET /2.0/x"):
        with pytest.raises(SettingsError, match="lxd_passthrough_allow_extra"):
            make_settings(lxd_passthrough_allow_extra=(bad,))


async def test_allowed_state_change_reaches_lxd_and_is_audited(settings, signed_in, lxd, pool):
    admin = await signed_in(settings, "admin")

    status, body = await answer(
        admin, "PUT", BASE + "/instances/web/state", json={"action": "stop"}
    )

    assert (status, body["type"]) == (202, "async")
    assert lxd.instances["web"].status == "Stopped"
    status, body = await answer(
        admin, "GET", BASE + body["operation"].removeprefix("/1.0") + "/wait"
    )
    assert (status, body["metadata"]["status"]) == (200, "Success")
    rows = await pool.fetch("SELECT target, method, path, status FROM audit_log ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("manager", "PUT", BASE + "/instances/web/state", 202),
        ("cluster", "PUT", "/1.0/instances/web/state", 202),
    ]


async def test_call_outside_the_allow_list_is_refused_before_the_cluster(settings, signed_in, lxd):
    admin = await signed_in(settings, "admin")

    for method, path in [
        ("PUT", "/1.0/instances/web"),
        ("GET", "/1.0/instances/web/files?path=/etc/shadow"),
        ("POST", "/1.0/instances/web/exec"),
        ("GET", "/1.0/certificates"),
    ]:
        status, body = await answer(admin, method, BASE + path.removeprefix("/1.0"), json={})
        assert status == 403, (method, path, body)
        assert "allow-list" in body["error"]

    assert lxd.requests == []


async def test_widened_rule_lets_the_call_through(settings, signed_in, lxd):
    admin = await signed_in(settings, "admin")

    status, _ = await answer(admin, "DELETE", BASE + "/instances/web")

    assert status == 404  # the simulated LXD cannot delete, but the call reached it
    assert lxd.requests == [("DELETE", "/1.0/instances/web")]


async def test_raw_pass_through_is_for_administrators_only(settings, signed_in, lxd):
    operator = await signed_in(settings, "oscar")

    status, _ = await answer(operator, "GET", BASE + "/instances")
    assert status == 403
    status, _ = await answer(
        operator, "PUT", BASE + "/instances/web/state", json={"action": "stop"}
    )
    assert status == 403
    assert lxd.requests == []


async def test_body_that_is_not_json_is_refused(settings, signed_in, lxd):
    admin = await signed_in(settings, "admin")

    status, body = await answer(admin, "PUT", BASE + "/instances/web/state", data=b"action=stop")

    assert status == 400
    assert body["error"] == "body: expected JSON"
    assert lxd.requests == []
