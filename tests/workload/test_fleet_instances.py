"""Fleet-wide instance search and bulk state changes over real tunnels from simulated clusters."""

from __future__ import annotations

import asyncio

import pytest
from cluster_manager.fleet.lxd import InMemoryLXD, Instance
from e2e_fixtures import wait_for_tunnel_rows

ROLE_GROUPS = {"oidc_operator_group": "operators", "oidc_viewer_group": "viewers"}


@pytest.fixture
def settings(make_settings, oidc_settings):
    return make_settings(
        **oidc_settings, **ROLE_GROUPS, fleet_cluster_timeout=0.5, fleet_fanout_concurrency=2
    )


@pytest.fixture
async def fleet(server, enrolled, open_tunnel, pool):
    """Clusters a, b, c with tunnels; slow (answers late), down (LXD fails), dark (no tunnel)."""
    lxds = {
        "a": InMemoryLXD(
            [
                Instance("web-1", "Running", "container", "m1"),
                Instance("db-1", "Stopped", "virtual-machine", "m1"),
            ]
        ),
        "b": InMemoryLXD(
            [
                Instance("web-2", "Running", "container", "m1", project="shop"),
                Instance("bad", "Stopped", "container", "m1", broken=True),
            ]
        ),
        "c": InMemoryLXD([Instance("web-3", "Frozen", "container", "m2")]),
        "down": InMemoryLXD([Instance("x")]),
        "slow": InMemoryLXD([Instance("late")]),
    }
    tunnels = {}
    for name, lxd in lxds.items():
        cluster = await enrolled(server, name)
        delay = 2.0 if name == "slow" else 0.0
        tunnels[name] = await open_tunnel(cluster, lxd=lxd, answer_delay=delay)
    tunnels["down"].lxd_down = True
    await enrolled(server, "dark")

    await wait_for_tunnel_rows(pool, len(lxds))
    return lxds, tunnels


async def answer(client, method: str, path: str, **kwargs) -> tuple[int, dict]:
    async with client.request(method, path, **kwargs) as response:
        return response.status, await response.json()


async def test_search_lists_every_connected_clusters_instances_and_who_did_not_answer(
    settings, signed_in, fleet
):
    viewer = await signed_in(settings, "alice")

    status, body = await answer(viewer, "GET", "/1.0/instances")

    assert status == 200, body
    page = body["metadata"]
    assert [(i["cluster"], i["name"], i["status"]) for i in page["instances"]] == [
        ("a", "web-1", "Running"),
        ("a", "db-1", "Stopped"),
        ("b", "web-2", "Running"),
        ("b", "bad", "Stopped"),
        ("c", "web-3", "Frozen"),
    ]
    assert page["clusters_asked"] == ["a", "b", "c", "down", "slow"]
    assert [(u["cluster"], u["status"]) for u in page["unanswered"]] == [
        ("down", 502),
        ("slow", 504),
    ]
    assert page["next_after"] is None


async def test_search_skips_a_tunnel_held_by_a_dead_unit(settings, signed_in, fleet, pool):
    # "dark" has a row on a unit that stopped refreshing 40 s ago (expiry: 3 x 10 s) and whose
    # rows no unit has deleted yet: it cannot be reached, so it is not asked.
    await pool.execute(
        "INSERT INTO remote_cluster_tunnel_units (unit_address, alive_at)"
        " VALUES ('10.9.9.9:9004', now() - interval '40 seconds')"
    )
    await pool.execute(
        "INSERT INTO remote_cluster_tunnels (cluster_id, unit_address, session)"
        " SELECT id, '10.9.9.9:9004', 'gone' FROM remote_clusters WHERE name = 'dark'"
    )
    viewer = await signed_in(settings, "alice")

    status, body = await answer(viewer, "GET", "/1.0/instances")

    assert status == 200, body
    assert body["metadata"]["clusters_asked"] == ["a", "b", "c", "down", "slow"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("name=web", ["web-1", "web-2", "web-3"]),
        ("status=running", ["web-1", "web-2"]),
        ("type=virtual-machine", ["db-1"]),
        ("project=shop", ["web-2"]),
        ("name=WEB&status=Frozen", ["web-3"]),
    ],
)
async def test_search_filters_by_name_status_type_and_project(
    settings, signed_in, fleet, query, expected
):
    viewer = await signed_in(settings, "alice")

    status, body = await answer(viewer, "GET", "/1.0/instances?" + query)

    assert status == 200, body
    assert [i["name"] for i in body["metadata"]["instances"]] == expected


async def test_search_pages_through_clusters(settings, signed_in, fleet):
    viewer = await signed_in(settings, "alice")

    _, first = await answer(viewer, "GET", "/1.0/instances?clusters=2")
    _, second = await answer(
        viewer, "GET", f"/1.0/instances?clusters=2&after={first['metadata']['next_after']}"
    )
    _, last = await answer(
        viewer, "GET", f"/1.0/instances?clusters=2&after={second['metadata']['next_after']}"
    )

    assert first["metadata"]["clusters_asked"] == ["a", "b"]
    assert second["metadata"]["clusters_asked"] == ["c", "down"]
    assert last["metadata"]["clusters_asked"] == ["slow"]
    assert last["metadata"]["next_after"] is None
    status, _ = await answer(viewer, "GET", "/1.0/instances?clusters=0")
    assert status == 400


async def test_bulk_change_answers_each_item(settings, signed_in, fleet, pool):
    lxds, _ = fleet
    operator = await signed_in(settings, "oscar")
    selected = [
        {"cluster": "a", "instance": "web-1"},
        {"cluster": "a", "instance": "db-1"},
        {"cluster": "b", "instance": "web-2", "project": "shop"},
        {"cluster": "b", "instance": "bad"},
        {"cluster": "b", "instance": "ghost"},
        {"cluster": "dark", "instance": "any"},
    ]

    status, body = await answer(
        operator,
        "POST",
        "/1.0/instances/bulk/state",
        json={"action": "restart", "force": True, "instances": selected},
    )

    assert status == 200, body
    results = body["metadata"]["results"]
    assert [(r["cluster"], r["instance"], r["result"], r["status"]) for r in results] == [
        ("a", "web-1", "success", None),
        ("a", "db-1", "success", None),
        ("b", "web-2", "success", None),
        ("b", "bad", "failure", None),
        ("b", "ghost", "error", 404),
        ("dark", "any", "error", 503),
    ]
    assert "reverse_tunnel true" in results[5]["error"]
    assert (body["metadata"]["succeeded"], body["metadata"]["failed"]) == (3, 3)
    assert lxds["a"].instances["db-1"].status == "Running"
    assert lxds["a"].state_requests[0]["force"] is True
    subjects = await pool.fetch("SELECT DISTINCT subject FROM audit_log")
    assert [r["subject"] for r in subjects] == ["oscar"]
    rows = await pool.fetch(
        "SELECT cluster, path, status FROM audit_log WHERE target = 'cluster' AND method = 'PUT'"
        " ORDER BY cluster, path"
    )
    # Every attempt is recorded, the one that could not reach its cluster too.
    assert [tuple(r) for r in rows] == [
        ("a", "/1.0/instances/db-1/state?project=default", 202),
        ("a", "/1.0/instances/web-1/state?project=default", 202),
        ("b", "/1.0/instances/bad/state?project=default", 202),
        ("b", "/1.0/instances/ghost/state?project=default", 404),
        ("b", "/1.0/instances/web-2/state?project=shop", 202),
        ("dark", "/1.0/instances/any/state?project=default", 503),
    ]


async def test_tunnel_dropping_mid_bulk_fails_its_items_while_others_succeed(
    settings, signed_in, fleet
):
    lxds, tunnels = fleet
    tunnels["c"].answer_delay = 3.0
    operator = await signed_in(settings, "oscar")
    selected = [
        {"cluster": "a", "instance": "web-1"},
        {"cluster": "c", "instance": "web-3"},
        {"cluster": "b", "instance": "web-2", "project": "shop"},
    ]

    bulk = asyncio.create_task(
        answer(
            operator,
            "POST",
            "/1.0/instances/bulk/state",
            json={"action": "stop", "instances": selected},
        )
    )
    await asyncio.sleep(0.5)  # c's request is in its tunnel, waiting on its slow LXD
    assert not bulk.done()
    await tunnels["c"].close()
    status, body = await bulk

    assert status == 200, body
    results = {r["cluster"]: r for r in body["metadata"]["results"]}
    assert results["a"]["result"] == "success"
    assert results["b"]["result"] == "success"
    assert results["c"]["result"] == "error"
    assert results["c"]["status"] in (502, 503)
    assert lxds["a"].instances["web-1"].status == "Stopped"
    assert lxds["b"].instances["web-2"].status == "Stopped"
    assert lxds["c"].instances["web-3"].status == "Frozen"


async def test_viewer_cannot_bulk_change(settings, signed_in, fleet):
    lxds, _ = fleet
    viewer = await signed_in(settings, "alice")

    status, _ = await answer(
        viewer,
        "POST",
        "/1.0/instances/bulk/state",
        json={"action": "stop", "instances": [{"cluster": "a", "instance": "web-1"}]},
    )

    assert status == 403
    assert lxds["a"].requests == []


async def test_bulk_refuses_bad_selection_without_calling_anyone(settings, signed_in, fleet):
    lxds, _ = fleet
    operator = await signed_in(settings, "oscar")

    for payload in [
        {"action": "stop", "instances": []},
        {"action": "delete", "instances": [{"cluster": "a", "instance": "web-1"}]},
        {"action": "stop", "instances": [{"cluster": "a", "instance": "../x"}]},
        {"action": "stop", "instances": [{"cluster": "a", "instance": "w"}] * 1001},
    ]:
        status, _ = await answer(operator, "POST", "/1.0/instances/bulk/state", json=payload)
        assert status == 400, payload
    assert all(lxd.requests == [] for lxd in lxds.values())
