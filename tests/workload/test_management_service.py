"""Management service functions against a real PostgreSQL: health, warnings, pages, overview."""

from __future__ import annotations

import re
from datetime import timedelta

import msgspec
import pytest
from cluster_manager import cluster_listing, clusters, overview, tokens
from cluster_manager.cluster_listing import ClusterQuery
from cluster_manager.clusters import ClusterChanges
from cluster_manager.errors import BadRequest, Conflict, NotFound
from cluster_manager.fields import field_message
from cluster_manager.seed import GIB, heartbeat, insert_cluster, insert_fleet
from conftest import table_rows


def shown(model):
    """A model as the API shows it (JSON values)."""
    return msgspec.to_builtins(model)


async def page(pool, settings, **query):
    return shown(await cluster_listing.list_cluster_page(pool, settings, ClusterQuery(**query)))


def names(result):
    return [cluster["name"] for cluster in result["clusters"]]


@pytest.fixture
async def mixed_fleet(pool):
    """One cluster in each health state, plus one over both thresholds."""
    await insert_cluster(pool, "alpha", heartbeat(memory=(1 * GIB, 16 * GIB)))
    await insert_cluster(pool, "bravo", heartbeat(memory=(15 * GIB, 16 * GIB)))
    await insert_cluster(
        pool,
        "charlie",
        heartbeat(memory=(1 * GIB, 16 * GIB)),
        heartbeat_ago=timedelta(minutes=10),
    )
    await insert_cluster(pool, "delta", None, joined_ago=timedelta(seconds=10))
    await insert_cluster(pool, "echo", None, joined_ago=timedelta(hours=2))
    pools = [
        {"name": "local", "member": "m1", "total": 100 * GIB, "usage": 95 * GIB},
        {"name": "remote", "member": "", "total": 1000 * GIB, "usage": 100 * GIB},
    ]
    await insert_cluster(pool, "foxtrot", heartbeat(memory=(14 * GIB, 16 * GIB), pools=pools))


async def test_health_states_are_computed_for_every_cluster(pool, settings, mixed_fleet):
    result = await page(pool, settings)

    health = {c["name"]: c["health"] for c in result["clusters"]}
    assert health == {
        "alpha": "healthy",
        "bravo": "warning",
        "charlie": "stale",
        "delta": "pending",
        "echo": "stale",
        "foxtrot": "warning",
    }
    assert result["total"] == 6


async def test_warnings_say_what_and_how_much(pool, settings, mixed_fleet):
    foxtrot = shown(await cluster_listing.get_cluster_view(pool, settings, "foxtrot"))

    kinds = [(w["kind"], w.get("pool")) for w in foxtrot["warnings"]]
    assert kinds == [("memory", None), ("storage_pool", "local")], foxtrot["warnings"]
    memory, disk = foxtrot["warnings"]
    assert memory["usage_percent"] == 87.5
    assert memory["threshold"] == 80
    assert memory["message"] == "memory usage 87.5% is above the 80% threshold"
    assert disk["message"] == "storage pool local on m1 is 95% full, above the 80% threshold"
    assert foxtrot["memory_usage_ratio"] == pytest.approx(0.875)
    assert foxtrot["storage_max_usage_ratio"] == pytest.approx(0.95)
    assert foxtrot["storage_total_amount"] == 1100 * GIB
    assert foxtrot["storage_usage"] == 195 * GIB


async def test_stale_cluster_says_how_long_it_has_been_silent(pool, settings, mixed_fleet):
    charlie = shown(await cluster_listing.get_cluster_view(pool, settings, "charlie"))
    echo = shown(await cluster_listing.get_cluster_view(pool, settings, "echo"))

    assert charlie["warnings"][0]["kind"] == "stale"
    assert charlie["warnings"][0]["message"].startswith("no heartbeat for 10 minutes")
    assert 599 < charlie["heartbeat_age_seconds"] < 700
    assert echo["warnings"][0]["message"].startswith("no heartbeat since joining 2 hours ago")
    assert echo["heartbeat_age_seconds"] is None
    assert echo["last_status_update_at"] is None


async def test_stale_limit_follows_settings(pool, make_settings, mixed_fleet):
    patient = make_settings(stale_after_intervals=20)

    charlie = shown(await cluster_listing.get_cluster_view(pool, patient, "charlie"))

    assert charlie["health"] == "healthy"


async def test_threshold_is_strictly_above(pool, settings):
    await insert_cluster(pool, "exact", heartbeat(memory=(80, 100)), memory_threshold=80)

    exact = shown(await cluster_listing.get_cluster_view(pool, settings, "exact"))

    assert exact["health"] == "healthy"
    assert exact["warnings"] == []


async def test_filter_by_health_search_and_status(pool, settings, mixed_fleet):
    assert names(await page(pool, settings, health=("stale", "pending"))) == [
        "charlie",
        "delta",
        "echo",
    ]
    assert names(await page(pool, settings, search="RAV")) == ["bravo"]
    assert names(await page(pool, settings, search="%")) == []
    assert names(await page(pool, settings, status="PENDING_APPROVAL")) == []
    result = await page(pool, settings, health=("warning",), search="o")
    assert names(result) == ["bravo", "foxtrot"]
    assert result["total"] == 2


async def test_sort_by_memory_usage_puts_missing_values_last(pool, settings, mixed_fleet):
    descending = await page(pool, settings, sort="memory_usage_ratio", order="desc")
    ascending = await page(pool, settings, sort="memory_usage_ratio", order="asc")

    assert names(descending) == ["bravo", "foxtrot", "alpha", "charlie", "delta", "echo"]
    assert names(ascending) == ["alpha", "charlie", "foxtrot", "bravo", "delta", "echo"]


async def test_sort_by_health_puts_the_urgent_first(pool, settings, mixed_fleet):
    result = await page(pool, settings, sort="health")

    assert names(result) == ["charlie", "echo", "bravo", "foxtrot", "delta", "alpha"]


async def test_pages_cover_the_fleet_once_with_the_total(pool, settings):
    await insert_fleet(pool, 1234, prefix="c-")
    seen = []
    for offset in range(0, 1300, 500):
        result = await page(pool, settings, limit=500, offset=offset, sort="joined_at")
        assert result["total"] == 1234
        seen.extend(names(result))

    assert len(seen) == len(set(seen)) == 1234
    beyond = await page(pool, settings, limit=10, offset=5000)
    assert beyond["clusters"] == []
    assert beyond["total"] == 1234


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": "fingerprint"}, "sort"),
        ({"order": "up"}, "order"),
        ({"health": ("sick",)}, "health"),
        ({"status": "GONE"}, "status"),
        ({"search": "x" * 64}, "search"),
    ],
)
def test_bad_query_is_refused_naming_the_parameter(query, field):
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert(query, ClusterQuery)

    assert re.match(rf"^{field}(\[\d+\])?: ", field_message(refused.value))


def changes(**fields):
    return msgspec.convert(fields, ClusterChanges)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"description": "new", "memory_threshold": 101}, "memory_threshold: expected int ≤ 100"),
        ({"description": "new", "status": "x"}, "status: not a known field"),
        ({"description": "a\x00b"}, "description: must not contain NUL"),
    ],
)
def test_bad_changes_are_refused_naming_the_field(fields, message):
    with pytest.raises(msgspec.ValidationError) as refused:
        changes(**fields)

    assert field_message(refused.value).startswith(message)


async def test_update_changes_every_field_or_none(pool, settings, mixed_fleet):
    before = await table_rows(pool)
    with pytest.raises(BadRequest, match=r"^nothing to change"):
        await clusters.update_cluster(pool, "alpha", changes())
    with pytest.raises(NotFound):
        await clusters.update_cluster(pool, "zulu", changes(description="new"))
    assert await table_rows(pool) == before

    await clusters.update_cluster(pool, "alpha", changes(description="new", memory_threshold=5))

    alpha = shown(await cluster_listing.get_cluster_view(pool, settings, "alpha"))
    assert alpha["description"] == "new"
    assert alpha["memory_threshold"] == 5
    assert alpha["disk_threshold"] == 80
    assert alpha["health"] == "warning"
    assert alpha["warnings"][0]["kind"] == "memory"


async def test_overview_aggregates_the_fleet(pool, settings, mixed_fleet):
    result = shown(await overview.fleet_overview(pool, settings))

    assert result["clusters"]["total"] == 6
    assert result["clusters"]["reporting"] == 3  # charlie's heartbeats stopped
    assert result["clusters"]["by_health"] == {
        "stale": 2,
        "error": 0,
        "warning": 2,
        "pending": 1,
        "healthy": 1,
    }
    assert result["clusters"]["by_status"] == {"ACTIVE": 6}
    assert result["instances"] == {
        "total": 16,
        "statuses": [{"status": "Running", "count": 12}, {"status": "Stopped", "count": 4}],
    }
    assert result["members"] == {"total": 12, "statuses": [{"status": "Online", "count": 12}]}
    assert result["memory"]["total"] == 64 * GIB
    assert result["memory"]["usage"] == 31 * GIB
    assert result["memory"]["usage_ratio"] == pytest.approx(31 / 64)
    assert result["storage"]["total"] == 1400 * GIB
    assert result["storage"]["usage"] == 225 * GIB
    # Three reporting clusters of 8 CPUs, each sending 0.5 per CPU: 4 per cluster, summed.
    assert result["cpu"]["clusters"] == 3
    assert result["cpu"]["members"] == 9
    assert result["cpu"]["total_count"] == 24
    assert result["cpu"]["load_1"] == 12.0
    assert result["cpu"]["load_1_per_member"] == pytest.approx(12 / 9)
    assert result["cpu"]["load_1_per_cpu"] == pytest.approx(0.5)
    warned = [(c["name"], c["health"]) for c in result["warnings"]["clusters"]]
    assert warned == [
        ("charlie", "stale"),
        ("echo", "stale"),
        ("bravo", "warning"),
        ("foxtrot", "warning"),
    ]
    assert result["warnings"]["total"] == 4
    assert result["warnings"]["truncated"] is False
    assert result["warnings"]["clusters"][3]["warnings"][1]["pool"] == "local"


async def test_overview_of_an_empty_fleet(pool, settings):
    result = shown(await overview.fleet_overview(pool, settings))

    assert result["clusters"]["total"] == 0
    assert result["instances"] == {"total": 0, "statuses": []}
    assert result["memory"] == {"total": 0, "usage": 0, "usage_ratio": None}
    assert result["warnings"] == {"total": 0, "clusters": [], "truncated": False}


async def test_overview_bounds_the_warning_list(pool, settings):
    await insert_fleet(pool, 2000, prefix="c-")

    result = shown(await overview.fleet_overview(pool, settings))

    assert result["clusters"]["total"] == 2000
    assert len(result["warnings"]["clusters"]) == overview.MAX_WARNING_CLUSTERS
    assert result["warnings"]["total"] > overview.MAX_WARNING_CLUSTERS
    assert result["warnings"]["truncated"] is True
    assert result["clusters"]["by_health"]["stale"] == 40


async def test_token_list_says_which_tokens_expired(pool, settings):
    await tokens.create_token(pool, settings, "fresh")
    await tokens.create_token(pool, settings, "old")
    await pool.execute(
        "UPDATE remote_cluster_tokens SET expires_at = now() - interval '1 s' WHERE name = 'old'"
    )

    listed = shown(await tokens.list_tokens_with_state(pool))

    assert {t["name"]: t["expired"] for t in listed} == {"fresh": False, "old": True}
    assert all("secret" not in t for t in listed)


async def test_token_name_clashing_with_a_cluster_is_refused(pool, settings, mixed_fleet):
    with pytest.raises(Conflict, match="already enrolled"):
        await tokens.create_token(pool, settings, "alpha")
