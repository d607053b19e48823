"""Health from everything a heartbeat says, the list's filters, and figures that add up.

Status values are the MicroCloud daemon's (canonical/microcloud,
cmd/microcloudd/cluster_manager_task.go): member statuses at line 263 are LXD's
``api.ClusterMember.Status`` (lxd/db/node.go ``ToAPI``: Online, Evacuated, Offline, Blocked);
Ceph statuses at line 179 are microcluster's ``MemberStatus`` (ONLINE, UNREACHABLE, NOT
TRUSTED, NOT FOUND); instance statuses at line 201 are LXD's (Running, Stopped, Frozen, Error).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import msgspec
import pytest
from cluster_manager import cluster_listing, fleet_settings, overview
from cluster_manager.cluster_listing import ClusterFilter, ClusterQuery
from cluster_manager.fields import field_message
from cluster_manager.heartbeats import store_heartbeat
from cluster_manager.seed import GIB, heartbeat, insert_cluster, insert_fleet


def shown(model):
    """A model as the API shows it (JSON values)."""
    return msgspec.to_builtins(model)


async def view(pool, settings, name):
    return shown(await cluster_listing.get_cluster_view(pool, settings, name))


async def everything(pool, settings, **query):
    """Every cluster the list shows for a filter, all pages."""
    clusters, offset = [], 0
    while True:
        page = shown(
            await cluster_listing.list_cluster_page(
                pool, settings, ClusterQuery(**query, limit=500, offset=offset)
            )
        )
        clusters.extend(page["clusters"])
        offset += 500
        if offset >= page["total"]:
            return clusters


def messages(cluster):
    return [(w["kind"], w.get("severity"), w["message"]) for w in cluster["warnings"]]


@pytest.fixture
async def degraded(pool):
    """Clusters with what upstream's manager warns about, one problem each."""
    await insert_cluster(pool, "ok", heartbeat(ceph={"ONLINE": 3}))
    await insert_cluster(pool, "two-down", heartbeat(members={"Online": 1, "Offline": 2}))
    await insert_cluster(pool, "blocked", heartbeat(members={"Online": 2, "Blocked": 1}))
    await insert_cluster(pool, "evacuated", heartbeat(members={"Online": 2, "Evacuated": 1}))
    await insert_cluster(pool, "errors", heartbeat(instances={"Running": 3, "Error": 5}))
    await insert_cluster(pool, "ceph-down", heartbeat(ceph={"ONLINE": 2, "UNREACHABLE": 1}))


async def test_a_cluster_with_members_down_is_in_error_saying_how_many(pool, settings, degraded):
    two_down = await view(pool, settings, "two-down")
    blocked = await view(pool, settings, "blocked")

    assert two_down["health"] == "error"
    assert messages(two_down) == [("members", "error", "2 of 3 members Offline")]
    assert two_down["warnings"][0]["count"] == 2
    assert two_down["warnings"][0]["total"] == 3
    assert blocked["health"] == "error"
    assert messages(blocked) == [("members", "error", "1 of 3 members Blocked")]


async def test_evacuated_members_and_error_instances_are_milder_warnings(pool, settings, degraded):
    evacuated = await view(pool, settings, "evacuated")
    errors = await view(pool, settings, "errors")

    assert evacuated["health"] == "warning"
    assert messages(evacuated) == [("members", "warning", "1 of 3 members Evacuated")]
    assert errors["health"] == "warning"
    assert messages(errors) == [("instances", "warning", "5 instances in Error")]


async def test_ceph_members_not_online_put_the_cluster_in_error(pool, settings, degraded):
    ceph = await view(pool, settings, "ceph-down")
    healthy = await view(pool, settings, "ok")

    assert ceph["health"] == "error"
    assert messages(ceph) == [("ceph", "error", "1 of 3 Ceph members UNREACHABLE")]
    assert healthy["health"] == "healthy"
    assert healthy["warnings"] == []


async def test_every_problem_of_one_cluster_is_named(pool, settings):
    await insert_cluster(
        pool,
        "worst",
        heartbeat(
            members={"Online": 1, "Offline": 1, "Evacuated": 1},
            instances={"Running": 1, "Error": 1},
            ceph={"NOT FOUND": 1},
            memory=(15 * GIB, 16 * GIB),
        ),
    )

    worst = await view(pool, settings, "worst")

    assert worst["health"] == "error"
    assert messages(worst) == [
        ("members", "error", "1 of 3 members Offline"),
        ("members", "warning", "1 of 3 members Evacuated"),
        ("ceph", "error", "1 of 1 Ceph member NOT FOUND"),
        ("instances", "warning", "1 instance in Error"),
        ("memory", None, "memory usage 93.75% is above the 80% threshold"),
    ]


async def test_status_lists_stored_as_json_null_count_as_empty(pool, settings):
    cluster_id = await insert_cluster(pool, "nulls", heartbeat())
    await pool.execute(
        "UPDATE remote_cluster_details SET member_statuses = 'null', ceph_statuses = 'null',"
        " instance_statuses = 'null' WHERE cluster_id = $1",
        cluster_id,
    )

    nulls = await view(pool, settings, "nulls")

    assert nulls["health"] == "healthy"
    assert nulls["warnings"] == []


async def test_stale_cluster_stays_stale_and_keeps_its_last_known_problems(pool, settings):
    await insert_cluster(
        pool,
        "silent",
        heartbeat(members={"Online": 1, "Offline": 2}),
        heartbeat_ago=timedelta(hours=1),
    )

    silent = await view(pool, settings, "silent")

    assert silent["health"] == "stale"
    assert [w["kind"] for w in silent["warnings"]] == ["stale", "members"]


async def test_error_is_a_filter_a_count_and_sorts_after_stale(pool, settings, degraded):
    await insert_cluster(pool, "quiet", heartbeat(), heartbeat_ago=timedelta(hours=1))

    in_error = await everything(pool, settings, health=("error",))
    by_health = await everything(pool, settings, sort="health")
    counts = shown(await overview.fleet_overview(pool, settings))["clusters"]["by_health"]

    assert [c["name"] for c in in_error] == ["blocked", "ceph-down", "two-down"]
    assert [c["health"] for c in by_health] == [
        "stale",
        "error",
        "error",
        "error",
        "warning",
        "warning",
        "healthy",
    ]
    assert counts == {"stale": 1, "error": 3, "warning": 2, "pending": 0, "healthy": 1}


async def test_filters_by_instance_status_member_status_and_usage(pool, settings, degraded):
    await insert_cluster(pool, "full", heartbeat(memory=(15 * GIB, 16 * GIB)))

    def named(clusters):
        return sorted(c["name"] for c in clusters)

    assert named(await everything(pool, settings, instance_status="Error")) == ["errors"]
    assert named(await everything(pool, settings, member_status="Offline")) == ["two-down"]
    assert named(await everything(pool, settings, member_status="offline")) == []
    assert named(await everything(pool, settings, memory_min=0.9)) == ["full"]
    assert len(await everything(pool, settings, memory_max=0.5)) == 6
    assert named(await everything(pool, settings, memory_min=0.3, memory_max=0.9)) == []
    assert len(await everything(pool, settings, storage_min=0.1, storage_max=0.1)) == 7
    assert await everything(pool, settings, memory_min=0.5, memory_max=0.4) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"storage_max": 1.5}, "storage_max: expected float ≤ 1.0"),
        ({"memory_min": -0.1}, "memory_min: expected float ≥ 0.0"),
        ({"instance_status": "x" * 65}, "instance_status: expected str of length ≤ 64"),
        ({"member_status": "a\x00"}, "member_status: must not contain NUL"),
    ],
)
def test_bad_filters_are_refused_naming_the_parameter(query, message):
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert(query, ClusterQuery)

    assert field_message(refused.value) == message


@pytest.fixture
async def mixed_fleet(pool, degraded):
    """A seeded fleet with every kind of problem, plus stale, pending and degraded clusters."""
    await insert_fleet(pool, 600, prefix="c-")
    await insert_cluster(pool, "never", None, joined_ago=timedelta(seconds=5))
    await insert_cluster(pool, "gone", None, joined_ago=timedelta(hours=5))
    await insert_cluster(
        pool,
        "old-news",
        heartbeat(members={"Online": 2, "Offline": 1}),
        heartbeat_ago=timedelta(hours=2),
    )


def status_sums(clusters, field):
    totals = {}
    for cluster in clusters:
        for entry in cluster[field]:
            totals[entry["status"]] = totals.get(entry["status"], 0) + entry["count"]
    return totals


FILTERS = [
    {},
    {"health": ("error",)},
    {"health": ("warning", "stale")},
    {"member_status": "Offline"},
    {"instance_status": "Error", "search": "c-0"},
    {"memory_min": 0.5, "storage_max": 0.9},
]


@pytest.mark.parametrize("query", FILTERS, ids=lambda q: ",".join(q) or "all")
async def test_every_overview_figure_is_the_sum_of_the_list(pool, settings, mixed_fleet, query):
    listed = await everything(pool, settings, **query)
    summary = shown(await overview.fleet_overview(pool, settings, ClusterFilter(**query)))

    counts = summary["clusters"]
    assert counts["total"] == len(listed)
    for state, count in counts["by_health"].items():
        assert count == sum(c["health"] == state for c in listed), state
    reporting = [c for c in listed if c["health"] in ("error", "warning", "healthy")]
    assert counts["reporting"] == len(reporting)
    assert counts["by_status"] == ({"ACTIVE": len(listed)} if listed else {})
    for kind, field in (("instances", "instance_statuses"), ("members", "member_statuses")):
        shown_statuses = {e["status"]: e["count"] for e in summary[kind]["statuses"]}
        assert shown_statuses == status_sums(listed, field), kind
        assert summary[kind]["total"] == sum(c[field[:-9] + "_count"] for c in listed)
    ceph = {e["status"]: e["count"] for e in summary["ceph"]["statuses"]}
    assert ceph == status_sums(listed, "ceph_statuses")
    assert summary["memory"]["total"] == sum(c["memory_total_amount"] for c in listed)
    assert summary["memory"]["usage"] == sum(c["memory_usage"] for c in listed)
    assert summary["storage"]["total"] == sum(c["storage_total_amount"] for c in listed)
    assert summary["storage"]["usage"] == sum(c["storage_usage"] for c in listed)
    assert summary["cpu"]["clusters"] == len(reporting)
    assert summary["cpu"]["members"] == sum(c["member_count"] for c in reporting)
    # A cluster that sends its CPU count sends its load per CPU (see overview.CpuTotals).
    summed = sum(float(c["cpu_load_1"]) * max(c["cpu_total_count"], 1) for c in reporting)
    assert summary["cpu"]["load_1"] == pytest.approx(summed, abs=0.01)
    attention = [c for c in listed if c["health"] in ("stale", "error", "warning")]
    assert summary["warnings"]["total"] == len(attention)


async def test_the_mixed_fleet_flags_every_degraded_cluster(pool, settings, mixed_fleet):
    listed = await everything(pool, settings)

    for cluster in listed:
        statuses = {e["status"] for e in cluster["member_statuses"]}
        statuses |= {e["status"] for e in cluster["ceph_statuses"]}
        statuses |= {e["status"] for e in cluster["instance_statuses"]}
        if statuses & {"Offline", "UNREACHABLE", "Blocked"}:
            assert cluster["health"] in ("error", "stale"), cluster["name"]
        if statuses & {"Evacuated", "Error"}:
            assert cluster["health"] != "healthy", cluster["name"]


async def test_cpu_is_load_per_member_when_clusters_send_no_cpu_count(pool, settings):
    # The shipped daemon sends cpu_total_count 0 and its members' summed load.
    await insert_cluster(pool, "a", heartbeat(cpu_total_count=0, cpu_load_1=3.0))
    await insert_cluster(pool, "b", heartbeat(cpu_total_count=16, cpu_load_1=0.25))

    cpu = shown(await overview.fleet_overview(pool, settings))["cpu"]

    assert cpu["load_1"] == 7.0  # 3 + 0.25 x 16
    assert cpu["members"] == 6
    assert cpu["load_1_per_member"] == pytest.approx(7 / 6)
    assert cpu["total_count"] == 0
    assert cpu["load_1_per_cpu"] is None
    only_b = shown(await overview.fleet_overview(pool, settings, ClusterFilter(search="b")))
    assert only_b["cpu"]["total_count"] == 16
    assert only_b["cpu"]["load_1_per_cpu"] == pytest.approx(0.25)


async def test_fleet_default_threshold_applies_unless_the_cluster_has_its_own(pool, settings):
    await insert_cluster(pool, "follows", heartbeat(memory=(12 * GIB, 16 * GIB)))
    await insert_cluster(pool, "own", heartbeat(memory=(12 * GIB, 16 * GIB)), memory_threshold=90)

    before = await view(pool, settings, "follows")
    await fleet_settings.update_settings(
        pool, settings, fleet_settings.SettingsChanges(memory_threshold=70)
    )
    follows = await view(pool, settings, "follows")
    own = await view(pool, settings, "own")

    assert (before["health"], before["memory_threshold"]) == ("healthy", 80)
    assert before["memory_threshold_source"] == "default"
    assert follows["health"] == "warning"
    assert follows["memory_threshold"] == 70
    assert follows["warnings"][0]["message"] == "memory usage 75% is above the 70% threshold"
    assert (own["health"], own["memory_threshold"]) == ("healthy", 90)
    assert own["memory_threshold_source"] == "cluster"
    assert own["disk_threshold_source"] == "default"


async def test_fleet_staleness_overrides_the_unit_config_until_reset(pool, settings):
    await insert_cluster(pool, "slow", heartbeat(), heartbeat_ago=timedelta(minutes=10))
    assert (await view(pool, settings, "slow"))["health"] == "stale"

    changed = shown(
        await fleet_settings.update_settings(
            pool, settings, fleet_settings.SettingsChanges(stale_after_intervals=100)
        )
    )
    patient = await view(pool, settings, "slow")
    reset = shown(
        await fleet_settings.update_settings(
            pool, settings, fleet_settings.SettingsChanges(stale_after_intervals=None)
        )
    )

    assert changed["stale_after_intervals"] == 100
    assert changed["stale_after_intervals_source"] == "settings"
    assert changed["stale_after_seconds"] == 100 * settings.heartbeat_interval
    assert patient["health"] == "healthy"
    assert reset["stale_after_intervals"] == settings.stale_after_intervals
    assert reset["stale_after_intervals_source"] == "config"
    assert (await view(pool, settings, "slow"))["health"] == "stale"


async def test_each_heartbeat_recomputes_health_in_its_one_statement(pool, settings):
    cluster_id = await insert_cluster(pool, "flapping", heartbeat())

    await store_heartbeat(pool, cluster_id, heartbeat(members={"Online": 2, "Offline": 1}))
    down = await view(pool, settings, "flapping")
    await store_heartbeat(pool, cluster_id, heartbeat(members={"Online": 3}))
    back = await view(pool, settings, "flapping")

    assert down["health"] == "error"
    assert messages(down) == [("members", "error", "1 of 3 members Offline")]
    assert back["health"] == "healthy"


ALL_STATES = ("stale", "error", "warning", "pending", "healthy")


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"sort": "name", "order": "desc"},
        {"sort": "joined_at", "order": "desc"},
        {"sort": "memory_usage_ratio", "order": "desc"},
        {"sort": "last_status_update_at"},
        {"search": "c-00"},
        {"search": "C-0001"},
        {"status": "ACTIVE", "sort": "joined_at"},
    ],
    ids=lambda q: ",".join(f"{k}={v}" for k, v in q.items()) or "default",
)
async def test_the_page_first_list_shows_what_the_health_computing_list_shows(
    pool, settings, mixed_fleet, query
):
    """Only search and status filters take the page-first path; naming every state does not."""
    page_first = await everything(pool, settings, **query)
    computed = await everything(pool, settings, **query, health=ALL_STATES)

    assert [c["name"] for c in page_first] == [c["name"] for c in computed]
    assert [c["health"] for c in page_first] == [c["health"] for c in computed]
    assert page_first


async def test_a_page_far_past_the_end_is_empty_with_the_total(pool, settings, mixed_fleet):
    page = shown(
        await cluster_listing.list_cluster_page(pool, settings, ClusterQuery(offset=10_000))
    )

    assert page["clusters"] == []
    assert page["total"] == 609


async def test_the_overview_serves_the_stored_summary_and_says_how_old(pool, settings):
    await insert_cluster(pool, "first", heartbeat())
    fresh = await overview.fleet_overview(pool, settings)
    await insert_cluster(pool, "second", heartbeat())

    stored = await overview.fleet_overview(pool, settings, max_age=60)
    recomputed = await overview.fleet_overview(pool, settings, max_age=0)

    assert (stored.clusters.total, stored.computed_at) == (1, fresh.computed_at)
    assert 0 <= stored.age_seconds < 60
    assert recomputed.clusters.total == 2
    assert recomputed.computed_at > fresh.computed_at


async def test_a_silent_cluster_is_counted_stale_within_seconds_without_a_heartbeat(
    pool, settings
):
    limit = await fleet_settings.stale_after_seconds(pool, settings)
    wait = overview.REFRESH_AFTER + 0.5
    ago = timedelta(seconds=limit - wait + 0.3)
    await insert_cluster(pool, "going-quiet", heartbeat(), heartbeat_ago=ago)
    before = await overview.fleet_overview(pool, settings)
    await asyncio.sleep(wait)

    served = await overview.fleet_overview(pool, settings, max_age=60)  # starts a refresh
    await asyncio.gather(*overview._refreshing.values())
    after = await overview.fleet_overview(pool, settings, max_age=60)

    assert before.clusters.by_health.healthy == 1
    assert served.clusters.by_health.healthy == 1  # the stored figures, a few seconds old
    assert after.clusters.by_health.stale == 1
    assert after.age_seconds < 1


async def test_only_one_unit_computes_the_summary_at_a_time(pool, settings, database_dsn):
    await insert_cluster(pool, "one", heartbeat())
    other_unit = await asyncpg.connect(database_dsn)
    try:
        async with other_unit.transaction():
            await other_unit.execute(overview.WAIT_SUMMARY_LOCK, overview.SUMMARY_LOCK_ID)
            computed = await overview.refresh_summary(pool, 180.0, wait=False)
            stored = await pool.fetchval("SELECT count(*) FROM fleet_summary")
    finally:
        await other_unit.close()

    assert computed is False
    assert stored == 0
    assert await overview.refresh_summary(pool, 180.0, wait=False) is True


@pytest.mark.parametrize(
    "states", [("error",), ("stale",), ("pending",), ("stale", "pending", "error")], ids=str
)
@pytest.mark.parametrize("sort", ["name", "health", "memory_usage_ratio"])
async def test_a_list_of_stale_pending_or_error_clusters_misses_none(
    pool, settings, mixed_fleet, states, sort
):
    """Health filters read index ranges of the stored rank and heartbeat time (cluster_pages)."""
    narrowed = await everything(pool, settings, health=states, sort=sort)
    every = await everything(pool, settings, sort=sort, health=ALL_STATES)

    assert [c["name"] for c in narrowed] == [c["name"] for c in every if c["health"] in states]
    assert narrowed


@pytest.mark.parametrize("offset", [0, 20, 60, 70, 600])
@pytest.mark.parametrize("search", ["", "c-0"])
async def test_pages_by_health_are_those_of_the_whole_fleet(
    pool, settings, mixed_fleet, offset, search
):
    """Sorted by health, a page reads the blocks it covers; later pages, from the far end."""
    query = {"sort": "health", "limit": 10, "offset": offset, "search": search}
    page = shown(await cluster_listing.list_cluster_page(pool, settings, ClusterQuery(**query)))
    full = shown(
        await cluster_listing.list_cluster_page(
            pool, settings, ClusterQuery(**query, health=ALL_STATES)
        )
    )

    assert [c["name"] for c in page["clusters"]] == [c["name"] for c in full["clusters"]]
    assert page["total"] == full["total"]
    assert page["clusters"] or offset == 600
    urgent = await cluster_listing.list_cluster_page(
        pool, settings, ClusterQuery(health=("stale", "error"), search=search, limit=1)
    )
    assert urgent.total > 60  # so the first pages lie within the stale and error blocks
