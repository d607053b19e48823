"""Instances, members and warnings of a cluster through its tunnel, over the Management API.

Real TLS, real sign-in at the test identity provider, real tunnels from simulated clusters
(:mod:`cluster_manager.fleet.tunnel`, whose LXD follows canonical/lxd ``shared/api``, see
:mod:`cluster_manager.fleet.lxd` for files and lines).
"""

from __future__ import annotations

import os

import pytest
from cluster_manager.fleet.lxd import InMemoryLXD, Instance, Member
from conftest import free_port
from e2e_fixtures import wait_for_tunnel_rows

ROLE_GROUPS = {"oidc_operator_group": "operators", "oidc_viewer_group": "viewers"}
WARNINGS = [
    {
        "uuid": "5bd9c4c4-0000-4000-8000-000000000001",
        "location": "m1",
        "project": "",
        "type": "Couldn't find CGroup",
        "count": 3,
        "first_seen_at": "2026-12-01T10:00:00Z",
        "last_seen_at": "2026-12-06T10:00:00Z",
        "last_message": "Couldn't find the CGroup memory swap accounting",
        "severity": "low",
        "status": "new",
        "entity_url": "",
    }
]


def sample_lxd() -> InMemoryLXD:
    return InMemoryLXD(
        [
            Instance(
                "web",
                "Running",
                "container",
                "m1",
                cpu_usage_ns=2_500_000_000,
                memory_usage_bytes=512 * 1024 * 1024,
                addresses=("10.1.0.5", "fd42::5"),
            ),
            Instance("db", "Stopped", "virtual-machine", "m2"),
            Instance("ci", "Running", "container", "m2", project="builds", addresses=()),
            Instance("bad", "Stopped", "container", "m1", broken=True),
        ],
        members=[Member("m1", roles=("database", "database-leader")), Member("m2")],
        warnings=WARNINGS,
    )


@pytest.fixture
def settings(make_settings, oidc_settings):
    return make_settings(**oidc_settings, **ROLE_GROUPS)


@pytest.fixture
async def lxd(server, enrolled, open_tunnel):
    cluster = await enrolled(server, "edge-1")
    lxd = sample_lxd()
    await open_tunnel(cluster, lxd=lxd)
    return lxd


async def answer(client, method: str, path: str, **kwargs) -> tuple[int, dict]:
    async with client.request(method, path, **kwargs) as response:
        return response.status, await response.json()


async def test_inventory_matches_what_the_cluster_holds(settings, signed_in, lxd):
    viewer = await signed_in(settings, "alice")

    status, body = await answer(viewer, "GET", "/1.0/remote-cluster/edge-1/instances")

    assert status == 200, body
    assert body["metadata"]["cluster"] == "edge-1"
    assert body["metadata"]["instances"] == [
        {
            "name": "web",
            "project": "default",
            "type": "container",
            "status": "Running",
            "location": "m1",
            "cpu_seconds": 2.5,
            "memory_bytes": 512 * 1024 * 1024,
            "addresses": ["10.1.0.5", "fd42::5"],
        },
        {
            "name": "db",
            "project": "default",
            "type": "virtual-machine",
            "status": "Stopped",
            "location": "m2",
            "cpu_seconds": None,
            "memory_bytes": None,
            "addresses": [],
        },
        {
            "name": "ci",
            "project": "builds",
            "type": "container",
            "status": "Running",
            "location": "m2",
            "cpu_seconds": 1.5,
            "memory_bytes": 256 * 1024 * 1024,
            "addresses": [],
        },
        {
            "name": "bad",
            "project": "default",
            "type": "container",
            "status": "Stopped",
            "location": "m1",
            "cpu_seconds": None,
            "memory_bytes": None,
            "addresses": [],
        },
    ]
    status, body = await answer(
        viewer, "GET", "/1.0/remote-cluster/edge-1/instances?project=builds"
    )
    assert [i["name"] for i in body["metadata"]["instances"]] == ["ci"]


async def test_operator_stops_an_instance_and_the_audit_log_names_them(
    settings, signed_in, lxd, pool
):
    operator = await signed_in(settings, "oscar")

    status, body = await answer(
        operator,
        "PUT",
        "/1.0/remote-cluster/edge-1/instances/web/state",
        json={"action": "stop", "force": True, "timeout": 5},
    )

    assert status == 200, body
    result = body["metadata"]
    assert (result["result"], result["action"], result["error"]) == ("success", "stop", "")
    assert result["operation"].startswith("/1.0/operations/")
    assert lxd.instances["web"].status == "Stopped"
    assert lxd.state_requests == [
        {"action": "stop", "timeout": 5, "force": True, "stateful": False}
    ]
    rows = await pool.fetch(
        "SELECT subject, user_name, target, cluster, method, path, status FROM audit_log"
        " ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        (
            "oscar",
            "Oscar Operator",
            "manager",
            "edge-1",
            "PUT",
            "/1.0/remote-cluster/edge-1/instances/web/state",
            200,
        ),
        (
            "oscar",
            "Oscar Operator",
            "cluster",
            "edge-1",
            "PUT",
            "/1.0/instances/web/state?project=default",
            202,
        ),
    ]


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        ("start", "Stopped", "Running"),
        ("restart", "Running", "Running"),
        ("freeze", "Running", "Frozen"),
        ("unfreeze", "Frozen", "Running"),
    ],
)
async def test_each_state_change_reaches_the_instance(
    settings, signed_in, lxd, action, before, after
):
    admin = await signed_in(settings, "admin")
    lxd.instances["db"].status = before

    status, body = await answer(
        admin, "PUT", "/1.0/remote-cluster/edge-1/instances/db/state", json={"action": action}
    )

    assert (status, body["metadata"]["result"]) == (200, "success")
    assert lxd.instances["db"].status == after
    assert lxd.state_requests[-1]["action"] == action


async def test_failed_operation_is_reported_with_lxds_error(settings, signed_in, lxd):
    operator = await signed_in(settings, "oscar")

    status, body = await answer(
        operator, "PUT", "/1.0/remote-cluster/edge-1/instances/bad/state", json={"action": "start"}
    )

    assert status == 200
    assert body["metadata"]["result"] == "failure"
    assert "Failed to start instance 'bad'" in body["metadata"]["error"]


async def test_unknown_instance_is_404_and_bad_input_is_400_reaching_nothing(
    settings, signed_in, lxd
):
    operator = await signed_in(settings, "oscar")

    status, body = await answer(
        operator, "PUT", "/1.0/remote-cluster/edge-1/instances/nope/state", json={"action": "stop"}
    )
    assert status == 404
    assert "Instance not found" in body["error"]
    reached = list(lxd.requests)
    for path, payload in [
        ("/1.0/remote-cluster/edge-1/instances/web/state", {"action": "explode"}),
        ("/1.0/remote-cluster/edge-1/instances/web/state", {"action": "stop", "timeout": 99999}),
        ("/1.0/remote-cluster/edge-1/instances/we%2Fb/state", {"action": "stop"}),
        ("/1.0/remote-cluster/edge-1/instances/web/state", {"action": "stop", "extra": 1}),
    ]:
        status, body = await answer(operator, "PUT", path, json=payload)
        assert status == 400, (path, payload, body)
    assert lxd.requests == reached
    assert lxd.instances["web"].status == "Running"


async def test_viewer_cannot_change_state_and_nothing_reaches_the_cluster(
    settings, signed_in, lxd
):
    viewer = await signed_in(settings, "alice")

    status, body = await answer(
        viewer, "PUT", "/1.0/remote-cluster/edge-1/instances/web/state", json={"action": "stop"}
    )

    assert status == 403
    assert "operator" in body["error"]
    assert lxd.requests == []


async def test_members_with_roles_and_evacuate_then_restore(settings, signed_in, lxd):
    admin = await signed_in(settings, "admin")
    operator = await signed_in(settings, "oscar")

    status, body = await answer(admin, "GET", "/1.0/remote-cluster/edge-1/members")
    assert status == 200
    assert [(m["name"], m["status"], m["roles"]) for m in body["metadata"]["members"]] == [
        ("m1", "Online", ["database", "database-leader"]),
        ("m2", "Online", ["database"]),
    ]
    status, _ = await answer(
        operator,
        "POST",
        "/1.0/remote-cluster/edge-1/members/m1/state",
        json={"action": "evacuate"},
    )
    assert status == 403
    assert lxd.members["m1"].status == "Online"

    status, body = await answer(
        admin, "POST", "/1.0/remote-cluster/edge-1/members/m1/state", json={"action": "evacuate"}
    )
    assert (status, body["metadata"]["result"]) == (200, "success")
    assert lxd.members["m1"].status == "Evacuated"
    assert lxd.instances["web"].location == "m2"
    status, body = await answer(
        admin, "POST", "/1.0/remote-cluster/edge-1/members/m1/state", json={"action": "restore"}
    )
    assert (status, body["metadata"]["result"]) == (200, "success")
    assert lxd.members["m1"].status == "Online"


async def test_warnings_of_the_cluster(settings, signed_in, lxd):
    viewer = await signed_in(settings, "alice")

    status, body = await answer(viewer, "GET", "/1.0/remote-cluster/edge-1/warnings")

    assert status == 200
    [warning] = body["metadata"]["warnings"]
    assert warning["last_message"] == WARNINGS[0]["last_message"]
    assert (warning["severity"], warning["count"], warning["location"]) == ("low", 3, "m1")


async def test_cluster_without_tunnel_answers_503_naming_the_command(
    server, settings, signed_in, enrolled
):
    await enrolled(server, "dark-1")
    viewer = await signed_in(settings, "alice")

    status, body = await answer(viewer, "GET", "/1.0/remote-cluster/dark-1/instances")

    assert status == 503
    assert "microcloud cluster-manager set reverse_tunnel true" in body["error"]


async def test_state_change_on_the_unit_without_the_tunnel(
    start_server, make_oidc_settings, signed_in, enrolled, open_tunnel, tmp_path, pool
):
    key = tmp_path / "internal.key"
    key.write_text(os.urandom(32).hex())
    unit_a = await start_server(
        **make_oidc_settings(),
        **ROLE_GROUPS,
        internal_key_file=str(key),
        internal_port=free_port(),
    )
    unit_b = await start_server(
        **make_oidc_settings(),
        **ROLE_GROUPS,
        internal_key_file=str(key),
        internal_port=free_port(),
    )
    cluster = await enrolled(unit_a, "far-1")  # the token names unit A's connector
    lxd = sample_lxd()
    await open_tunnel(cluster, lxd=lxd)

    await wait_for_tunnel_rows(pool, 1)
    operator = await signed_in(unit_b.settings, "oscar")

    status, body = await answer(
        operator,
        "PUT",
        "/1.0/remote-cluster/far-1/instances/web/state",
        json={"action": "freeze"},
    )

    assert (status, body["metadata"]["result"]) == (200, "success"), body
    assert lxd.instances["web"].status == "Frozen"
    status, body = await answer(operator, "GET", "/1.0/remote-cluster/far-1/instances")
    assert body["metadata"]["cluster"] == "far-1"
    assert body["metadata"]["instances"][0]["status"] == "Frozen"


async def test_state_change_that_cannot_be_audited_is_503_and_never_reaches_the_cluster(
    settings, signed_in, lxd, pool
):
    operator = await signed_in(settings, "oscar")
    await pool.execute(
        "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$"
        " BEGIN RAISE EXCEPTION 'audit log is full'; END; $$ LANGUAGE plpgsql;"
        " CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log"
        " FOR EACH ROW EXECUTE FUNCTION refuse_audit();"
    )

    status, body = await answer(
        operator, "PUT", "/1.0/remote-cluster/edge-1/instances/web/state", json={"action": "stop"}
    )

    assert status == 503
    assert "audit log cannot record" in body["error"]
    assert lxd.requests == []
    assert lxd.instances["web"].status == "Running"
