"""Clusters as the Management API lists them: with health, warnings, filters, sorting, pages.

Three short statements answer a page: the count, the page's cluster ids by an index walk
(cluster_pages), and those rows in full with their health (cluster_health). Only the rows of
the page reach Python. FILTER_SQL is the same filter for the overview's live statement.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, get_args

import asyncpg
import msgspec

from cluster_manager import cluster_health, cluster_pages
from cluster_manager.cluster_health import ClusterWarning, Health
from cluster_manager.clusters import CLUSTER_COLUMNS, EnrolledCluster, Status, cluster_fields
from cluster_manager.errors import NotFound
from cluster_manager.fields import NO_NUL_REGEX, Bytes, Count, Ratio, Timestamp
from cluster_manager.fleet_settings import stale_after_seconds
from cluster_manager.settings import Settings

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
MAX_OFFSET = 10_000_000
MAX_SEARCH = 63
MAX_STATUS = 64  # as heartbeats.MAX_STATUS_LENGTH
UsageBound = Annotated[float, msgspec.Meta(ge=0, le=1)]

SortKey = Literal[
    "name",
    "joined_at",
    "last_status_update_at",
    "health",
    "instance_count",
    "member_count",
    "cpu_load_1",
    "memory_usage_ratio",
    "storage_max_usage_ratio",
]
assert set(cluster_pages.COLUMNS) | {"health"} == set(get_args(SortKey))

# When the cluster's reverse tunnel connected to some unit (NULL: no tunnel); see tunnel.store.
TUNNEL_SQL = """(
    SELECT t.connected_at FROM remote_cluster_tunnels t WHERE t.cluster_id = c.id
) AS tunnel_connected_at"""
ROW_COLUMNS = f"""
{CLUSTER_COLUMNS},
d.memory_usage_ratio, d.storage_max_usage_ratio, d.storage_total, d.storage_usage,
h.health, {cluster_health.HEARTBEAT_AGE_SQL} AS heartbeat_age, {TUNNEL_SQL}
"""
# $1 stale seconds, $2 ILIKE pattern or NULL, $3 status or NULL, $4 health states or NULL,
# $5 instance status, $6 member status (clusters with at least one instance/member in it),
# $7-$8 memory and $9-$10 storage usage ratio range (NULL: no bound; a bound excludes clusters
# without the figure; a minimum above its maximum selects none, as the ranges say). A status
# matches exactly as reported, so the UI can pass on one it saw.
FILTER_SQL = """
($2::text IS NULL OR c.name ILIKE $2 ESCAPE '\\')
AND ($3::text IS NULL OR c.status = $3)
AND ($4::text[] IS NULL OR h.health = ANY($4::text[]))
AND ($5::text IS NULL OR d.instance_statuses @> jsonb_build_array(jsonb_build_object(
        'status', $5::text)))
AND ($6::text IS NULL OR d.member_statuses @> jsonb_build_array(jsonb_build_object(
        'status', $6::text)))
AND ($7::float8 IS NULL OR d.memory_usage_ratio >= $7::float8)
AND ($8::float8 IS NULL OR d.memory_usage_ratio <= $8::float8)
AND ($9::float8 IS NULL OR d.storage_max_usage_ratio >= $9::float8)
AND ($10::float8 IS NULL OR d.storage_max_usage_ratio <= $10::float8)
"""
FILTER_PARAMETERS = 10
# The rows of a page, in full, by cluster id (cluster_pages finds the ids).
SELECT_IDS = f"""
SELECT c.id, {ROW_COLUMNS} FROM {cluster_health.FLEET_FROM_SQL} WHERE c.id = ANY($2::bigint[])
"""  # noqa: S608 - constant fragments
SELECT_NAMED = f"""
SELECT {ROW_COLUMNS} FROM {cluster_health.FLEET_FROM_SQL} WHERE c.name = ANY($2::text[])
"""  # noqa: S608 - constant fragments
SELECT_ONE = f"""
SELECT {ROW_COLUMNS} FROM {cluster_health.FLEET_FROM_SQL} WHERE c.name = $2
"""  # noqa: S608 - constant fragments


class ClusterFilter(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which clusters (the filters of the cluster list and the overview)."""

    search: Annotated[
        str,
        msgspec.Meta(
            max_length=MAX_SEARCH,
            pattern=NO_NUL_REGEX,
            description="case-insensitive substring of the name",
        ),
    ] = ""
    status: Annotated[
        Literal["", Status], msgspec.Meta(description="cluster status; empty for any")
    ] = ""
    health: Annotated[
        tuple[Health, ...],
        msgspec.Meta(
            min_length=1,
            description="comma-separated health states, any matching; leave it out for any",
        ),
    ] = ()
    instance_status: Annotated[
        str,
        msgspec.Meta(
            max_length=MAX_STATUS,
            pattern=NO_NUL_REGEX,
            description="only clusters with at least one instance in this status (e.g. Error)",
        ),
    ] = ""
    member_status: Annotated[
        str,
        msgspec.Meta(
            max_length=MAX_STATUS,
            pattern=NO_NUL_REGEX,
            description="only clusters with at least one member in this status (e.g. Offline)",
        ),
    ] = ""
    memory_min: Annotated[
        UsageBound | None, msgspec.Meta(description="memory usage ratio at least (0..1)")
    ] = None
    memory_max: Annotated[
        UsageBound | None, msgspec.Meta(description="memory usage ratio at most (0..1)")
    ] = None
    storage_min: Annotated[
        UsageBound | None, msgspec.Meta(description="fullest pool's usage ratio at least (0..1)")
    ] = None
    storage_max: Annotated[
        UsageBound | None, msgspec.Meta(description="fullest pool's usage ratio at most (0..1)")
    ] = None


class ClusterQuery(ClusterFilter, frozen=True, forbid_unknown_fields=True):
    """Which clusters, in which order, which page (the query string of the cluster list)."""

    sort: Annotated[
        SortKey,
        msgspec.Meta(
            description=(
                "sort key (health sorts stale, error, warning, pending, healthy); ties by name"
            )
        ),
    ] = "name"
    order: Annotated[
        Literal["asc", "desc"], msgspec.Meta(description="sort direction; missing values last")
    ] = "asc"
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT, description="page size")] = (
        DEFAULT_LIMIT
    )
    offset: Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET, description="clusters to skip")] = 0


class Cluster(EnrolledCluster, kw_only=True):
    """An enrolled cluster with its latest heartbeat, health, warnings and usage ratios."""

    health: Health
    warnings: list[ClusterWarning]
    heartbeat_age_seconds: Annotated[
        float | None,
        msgspec.Meta(
            description="seconds since the last heartbeat (server clock); null before one"
        ),
    ]
    memory_usage_ratio: Ratio | None
    storage_total_amount: Annotated[Bytes, msgspec.Meta(description="bytes, every pool summed")]
    storage_usage: Annotated[Bytes, msgspec.Meta(description="bytes, every pool summed")]
    storage_max_usage_ratio: Annotated[
        Ratio | None,
        msgspec.Meta(description="usage/total of the fullest pool; null when no pool has a size"),
    ]
    tunnel_connected: Annotated[
        bool, msgspec.Meta(description="whether the cluster's reverse tunnel is connected")
    ]
    tunnel_connected_at: Annotated[
        Timestamp | None,
        msgspec.Meta(description="when the tunnel connected to some unit; null without one"),
    ]


class ClusterPage(msgspec.Struct):
    """One page of the clusters matching the filters."""

    clusters: list[Cluster]
    total: Annotated[Count, msgspec.Meta(description="clusters matching the filters, all pages")]
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]
    offset: Count


def _like_pattern(search: str) -> str | None:
    if not search:
        return None
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _number(value: Decimal | None) -> int:
    return int(value) if value is not None else 0


def cluster_view(row: asyncpg.Record, stale_after: float) -> Cluster:
    """A cluster with its latest heartbeat, health, warnings and usage ratios."""
    return Cluster(
        **cluster_fields(row),
        health=row["health"],
        warnings=cluster_health.warnings(row, stale_after),
        heartbeat_age_seconds=(
            round(row["heartbeat_age"], 1) if row["last_status_update_at"] is not None else None
        ),
        memory_usage_ratio=row["memory_usage_ratio"],
        storage_total_amount=_number(row["storage_total"]),
        storage_usage=_number(row["storage_usage"]),
        storage_max_usage_ratio=row["storage_max_usage_ratio"],
        tunnel_connected=row["tunnel_connected_at"] is not None,
        tunnel_connected_at=row["tunnel_connected_at"],
    )


def filter_args(stale_after: float, query: ClusterFilter) -> list[object]:
    """The values of FILTER_SQL's parameters $1..$10 for a query."""
    return [
        stale_after,
        _like_pattern(query.search),
        query.status or None,
        list(query.health) or None,
        query.instance_status or None,
        query.member_status or None,
        query.memory_min,
        query.memory_max,
        query.storage_min,
        query.storage_max,
    ]


async def _health_page(
    pool: asyncpg.Pool,
    query: ClusterQuery,
    stale_after: float,
    total: int,
    counted_blocks: dict[str, int],
) -> cluster_pages.Statement:
    """The page sorted by health: its blocks counted, each no further than the page needs.

    Blocks are counted in the order the page is walked (see ``cluster_pages.health_walk``),
    each capped at what is left to reach the page's end, until the page is covered; unless
    the total's statement counted every block already (``cluster_pages.counts_blocks``).
    """
    walk = cluster_pages.health_walk(query, total)
    sizes: dict[str, int] = {}
    covered = 0
    for state in walk.states:
        if covered >= walk.end:
            break
        if state in counted_blocks:
            sizes[state] = counted_blocks[state]
        else:
            counted = cluster_pages.block_count_statement(
                query, stale_after, state, walk.end - covered
            )
            sizes[state] = await pool.fetchval(counted.sql, *counted.args)
        covered += sizes[state]
    return cluster_pages.health_page_statement(
        query, stale_after, walk, sizes, exact=bool(counted_blocks)
    )


async def list_cluster_page(
    pool: asyncpg.Pool,
    settings: Settings,
    query: ClusterQuery,
    stale_after: float | None = None,
) -> ClusterPage:
    """One page of clusters and how many match the filters in all.

    ``stale_after`` is the fleet's staleness limit when the caller has read it already.
    Three short statements: the count, the page's ids by an index walk (cluster_pages), and
    the page's rows in full; sorted by health, a capped count of each block the page's walk
    passes comes before the page's ids.
    """
    if stale_after is None:
        stale_after = await stale_after_seconds(pool, settings)
    counted = cluster_pages.count_statement(query, stale_after)
    counts = dict(await pool.fetchrow(counted.sql, *counted.args))
    total = counts.pop("total")
    ids: list[int] = []
    if query.offset < total:
        if query.sort == "health":
            page = await _health_page(pool, query, stale_after, total, counts)
        else:
            page = cluster_pages.page_statement(query, stale_after, total)
        ids = [row[0] for row in await pool.fetch(page.sql, *page.args)]
        if page.reverse:
            ids.reverse()
    rows = await pool.fetch(SELECT_IDS, stale_after, ids) if ids else []
    by_id = {row["id"]: row for row in rows}
    return ClusterPage(
        # A cluster removed between the statements is left out.
        clusters=[cluster_view(by_id[i], stale_after) for i in ids if i in by_id],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


async def get_cluster_view(pool: asyncpg.Pool, settings: Settings, name: str) -> Cluster:
    """One cluster as the list shows it; 404 if unknown."""
    stale_after = await stale_after_seconds(pool, settings)
    row = await pool.fetchrow(SELECT_ONE, stale_after, name)
    if row is None:
        raise NotFound(f"no cluster named {name!r}")
    return cluster_view(row, stale_after)
