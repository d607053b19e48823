"""Pages of the cluster list read by index walks (cluster_pages, migration 0009).

Every sort, in both directions, at the first, middle and last pages (read from the far end) and
past the end, must give exactly the clusters an independent ordering of the whole list gives:
the list read by name (remote_clusters' own index), sorted here in Python.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import get_args

import msgspec
import pytest
from cluster_manager import cluster_listing, cluster_pages
from cluster_manager.cluster_listing import ClusterQuery, SortKey
from cluster_manager.seed import GIB, heartbeat, insert_cluster, insert_fleet

HEALTH_ORDER = ("stale", "error", "warning", "pending", "healthy")
LIMIT = 7


@pytest.fixture
async def fleet(pool):
    """A seeded fleet plus clusters without figures: pending, silent, no memory, no pools."""
    await insert_fleet(pool, 240, prefix="c-")
    await insert_cluster(pool, "never", None, joined_ago=timedelta(seconds=5))
    await insert_cluster(pool, "gone", None, joined_ago=timedelta(hours=5))
    await insert_cluster(
        pool,
        "old-news",
        heartbeat(members={"Online": 2, "Offline": 1}),
        heartbeat_ago=timedelta(hours=2),
    )
    await insert_cluster(pool, "no-memory", heartbeat(memory=(0, 0), pools=[]))
    await insert_cluster(pool, "picky", heartbeat(memory=(GIB, 2 * GIB)), memory_threshold=10)


async def every_cluster(pool, settings, **query):
    clusters, offset = [], 0
    while True:
        page = msgspec.to_builtins(
            await cluster_listing.list_cluster_page(
                pool, settings, ClusterQuery(**query, limit=500, offset=offset)
            )
        )
        clusters.extend(page["clusters"])
        offset += 500
        if offset >= page["total"]:
            return clusters


def sort_value(cluster, sort):
    """The value the list sorts by; None for a figure the cluster has not sent."""
    if sort == "health":
        return HEALTH_ORDER.index(cluster["health"])
    if sort == "name":
        return cluster["name"]
    if sort == "joined_at":
        return datetime.fromisoformat(cluster["joined_at"])
    if cluster["last_status_update_at"] is None:
        return None
    if sort == "last_status_update_at":
        return datetime.fromisoformat(cluster["last_status_update_at"])
    if sort == "cpu_load_1":
        return float(cluster["cpu_load_1"])
    return cluster[sort]


def ordered(clusters, sort, order):
    """Missing values last, ties by name, as the API documents it."""
    present = [c for c in clusters if sort_value(c, sort) is not None]
    missing = sorted((c for c in clusters if sort_value(c, sort) is None), key=lambda c: c["name"])
    present.sort(key=lambda c: c["name"])
    present.sort(key=lambda c: sort_value(c, sort), reverse=order == "desc")
    return [c["name"] for c in present + missing]


def offsets(total):
    found = {0, LIMIT, total // 2 - 3, total // 2 + 1, total - 10, total - LIMIT, total - 1}
    return sorted(o for o in found if o >= 0)


async def pages(pool, settings, total, **query):
    """Every page at the offsets, as names, plus the totals the pages reported."""
    names, totals = {}, set()
    for offset in [*offsets(total), total, total + 5]:
        page = await cluster_listing.list_cluster_page(
            pool, settings, ClusterQuery(**query, limit=LIMIT, offset=offset)
        )
        names[offset] = [c.name for c in page.clusters]
        totals.add(page.total)
    return names, totals


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("sort", get_args(SortKey))
async def test_every_sort_gives_the_same_pages_as_sorting_everything(
    pool, settings, fleet, sort, order
):
    everything = await every_cluster(pool, settings)
    expected = ordered(everything, sort, order)

    names, totals = await pages(pool, settings, len(expected), sort=sort, order=order)

    assert totals == {len(expected)}
    for offset, shown in names.items():
        assert shown == expected[offset : offset + LIMIT], (offset, sort, order)
    assert names[len(expected)] == []


def offline(cluster):
    return any(e["status"] == "Offline" for e in cluster["member_statuses"])


FILTERED = [
    ({"health": ("error",)}, lambda c: c["health"] == "error"),
    ({"health": ("stale", "pending")}, lambda c: c["health"] in ("stale", "pending")),
    ({"health": ("warning", "healthy")}, lambda c: c["health"] in ("warning", "healthy")),
    (
        {"memory_min": 0.5, "memory_max": 0.8},
        lambda c: c["memory_usage_ratio"] is not None and 0.5 <= c["memory_usage_ratio"] <= 0.8,
    ),
    ({"member_status": "Offline"}, offline),
    ({"search": "c-00"}, lambda c: "c-00" in c["name"]),
    (
        {"search": "1", "health": ("healthy",)},
        lambda c: "1" in c["name"] and c["health"] == "healthy",
    ),
]


@pytest.mark.parametrize("sort", ["name", "health", "memory_usage_ratio", "joined_at"])
@pytest.mark.parametrize(("query", "keep"), FILTERED, ids=lambda q: str(q)[:40])
async def test_filtered_pages_are_those_of_the_filtered_whole(
    pool, settings, fleet, query, keep, sort
):
    everything = await every_cluster(pool, settings)
    for order in ("asc", "desc"):
        expected = ordered([c for c in everything if keep(c)], sort, order)
        assert expected, query

        names, totals = await pages(pool, settings, len(expected), sort=sort, order=order, **query)

        assert totals == {len(expected)}
        for offset, shown in names.items():
            assert shown == expected[offset : offset + LIMIT], (offset, order)


async def test_a_threshold_change_moves_the_cluster_in_the_health_order_at_once(
    pool, settings, fleet
):
    """The stored rank follows thresholds (triggers of migration 0009), not the next beat."""
    before = await every_cluster(pool, settings, health=("warning",))
    assert "picky" in [c["name"] for c in before]

    await pool.execute("UPDATE remote_clusters SET memory_threshold = 90 WHERE name = 'picky'")
    await pool.execute("UPDATE fleet_settings SET memory_threshold = 99, disk_threshold = 99")

    after = {c["name"]: c for c in await every_cluster(pool, settings)}
    warned = {c["name"] for c in await every_cluster(pool, settings, health=("warning",))}
    assert after["picky"]["health"] == "healthy"
    assert warned == {name for name, c in after.items() if c["health"] == "warning"}
    assert len(warned) < len(before)


# Sorted by health, a page counts the blocks it walks, each capped at what is left of the page:
# fleets whose blocks (stale, error, warning, pending, healthy) are smaller and larger than the
# page, and empty.
LAYOUTS = {
    "error empty": (4, 0, 9, 2, 6),
    "one large block": (1, 13, 0, 0, 1),
    "only healthy": (0, 0, 0, 0, 12),
}


async def insert_blocks(pool, sizes):
    """Clusters of each health state in the given numbers, names interleaving the states."""
    beats = {
        "stale": lambda name: insert_cluster(
            pool, name, heartbeat(), heartbeat_ago=timedelta(hours=2)
        ),
        "error": lambda name: insert_cluster(pool, name, heartbeat(members={"Offline": 1})),
        "warning": lambda name: insert_cluster(pool, name, heartbeat(memory=(15 * GIB, 16 * GIB))),
        "pending": lambda name: insert_cluster(pool, name, None, joined_ago=timedelta(seconds=5)),
        "healthy": lambda name: insert_cluster(pool, name, heartbeat()),
    }
    left = dict(zip(HEALTH_ORDER, sizes, strict=True))
    number = 0
    while any(left.values()):
        for state in HEALTH_ORDER:
            if left[state]:
                left[state] -= 1
                number += 1
                # Names out of state order: 3 -> "k03", reversed digits keep blocks interleaved.
                await beats[state](f"k{number:02d}"[::-1])


def at_most(value, limit):
    """A figure within a maximum filter (a cluster without the figure is left out)."""
    return value is not None and value <= limit


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize(
    "query",
    [
        {},
        {"health": ("stale", "warning", "healthy")},
        {"search": "1"},
        {"health": ("error",)},
        # Filters on figures: one pass counts every block (cluster_pages.counts_blocks).
        {"memory_max": 0.5},
        {"memory_max": 0.5, "health": ("pending", "healthy")},
    ],
    ids=str,
)
async def test_health_pages_at_every_offset_of_small_and_large_blocks(
    pool, settings, layout, query
):
    await insert_blocks(pool, LAYOUTS[layout])
    everything = await every_cluster(pool, settings)
    assert sorted(HEALTH_ORDER.index(c["health"]) for c in everything) == sorted(
        number for number, size in enumerate(LAYOUTS[layout]) for _ in range(size)
    )
    kept = [
        c
        for c in everything
        if c["health"] in query.get("health", HEALTH_ORDER)
        and query.get("search", "") in c["name"]
        and ("memory_max" not in query or at_most(c["memory_usage_ratio"], query["memory_max"]))
    ]
    for order in ("asc", "desc"):
        expected = ordered(kept, "health", order)
        for limit in (1, 3, 5, 30):
            for offset in range(len(expected) + 2):
                page = await cluster_listing.list_cluster_page(
                    pool,
                    settings,
                    ClusterQuery(**query, sort="health", order=order, limit=limit, offset=offset),
                )
                assert page.total == len(expected)
                assert [c.name for c in page.clusters] == expected[offset : offset + limit], (
                    order,
                    limit,
                    offset,
                )


async def test_a_block_count_stops_at_its_cap(pool, settings):
    await insert_blocks(pool, (4, 0, 9, 2, 6))
    query = ClusterQuery(sort="health")

    async def count(state, cap):
        statement = cluster_pages.block_count_statement(query, 180.0, state, cap)
        return await pool.fetchval(statement.sql, *statement.args)

    assert [await count("warning", cap) for cap in (0, 1, 5, 9, 10, 100)] == [0, 1, 5, 9, 9, 9]
    assert [await count(state, 100) for state in HEALTH_ORDER] == [4, 0, 9, 2, 6]
