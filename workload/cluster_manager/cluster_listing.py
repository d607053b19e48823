"""Clusters as the Management API lists them: with health, warnings, filters, sorting, pages.

One SQL statement answers a page: PostgreSQL filters, sorts and counts on the health it
computes (see cluster_health), and only the rows of the page reach Python.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import asyncpg
from multidict import MultiMapping

from cluster_manager import cluster_health, validation
from cluster_manager.clusters import CLUSTER_COLUMNS, cluster_dict
from cluster_manager.errors import BadRequest, NotFound
from cluster_manager.settings import Settings

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
MAX_OFFSET = 10_000_000
MAX_SEARCH = 63
STATUSES = ("ACTIVE", "PENDING_APPROVAL")

# Sort keys -> SQL expressions (a constant whitelist: only these reach the statement).
SORT_KEYS = {
    "name": "c.name",
    "joined_at": "c.joined_at",
    "last_status_update_at": "c.last_status_update_at",
    "health": cluster_health.HEALTH_RANK_SQL,
    "instance_count": "d.instance_count",
    "member_count": "d.member_count",
    "cpu_load_1": "d.cpu_load_1",
    "memory_usage_ratio": "d.memory_usage_ratio",
    "storage_max_usage_ratio": "d.storage_max_usage_ratio",
}
ORDERS = {"asc": "ASC", "desc": "DESC"}
QUERY_PARAMETERS = ("search", "status", "health", "sort", "order", "limit", "offset")

# When the cluster's reverse tunnel connected to some unit (NULL: no tunnel); see tunnel.store.
TUNNEL_SQL = """(
    SELECT t.connected_at FROM remote_cluster_tunnels t WHERE t.cluster_id = c.id
) AS tunnel_connected_at"""
ROW_COLUMNS = f"""
{CLUSTER_COLUMNS},
d.memory_usage_ratio, d.storage_max_usage_ratio, d.storage_total, d.storage_usage,
h.health, {cluster_health.HEARTBEAT_AGE_SQL} AS heartbeat_age, {TUNNEL_SQL}
"""
# $1 stale seconds, $2 ILIKE pattern or NULL, $3 status or NULL, $4 health states or NULL.
FILTER_SQL = """
($2::text IS NULL OR c.name ILIKE $2 ESCAPE '\\')
AND ($3::text IS NULL OR c.status = $3)
AND ($4::text[] IS NULL OR h.health = ANY($4::text[]))
"""
# Two steps: the filter and the sort read narrow rows of the whole fleet (a top-N sort for the
# page, one count for the total); only the page's rows are then read in full (heartbeat JSON).
# The total row comes back even when the page is empty, with NULL cluster columns.
SELECT_PAGE = f"""
WITH matching AS MATERIALIZED (
    SELECT c.id, c.name, {{sort}} AS sort_key, h.health
    FROM {cluster_health.FLEET_FROM_SQL}
    WHERE {FILTER_SQL}
),
page AS (
    SELECT * FROM matching ORDER BY sort_key {{order}} NULLS LAST, name LIMIT $5 OFFSET $6
)
SELECT {CLUSTER_COLUMNS},
       d.memory_usage_ratio, d.storage_max_usage_ratio, d.storage_total, d.storage_usage,
       page.health, {cluster_health.HEARTBEAT_AGE_SQL} AS heartbeat_age, total.count AS total,
       {TUNNEL_SQL}
FROM (SELECT count(*) FROM matching) AS total
LEFT JOIN page ON true
LEFT JOIN remote_clusters c ON c.id = page.id
LEFT JOIN remote_cluster_details d ON d.cluster_id = c.id
ORDER BY page.sort_key {{order}} NULLS LAST, page.name
"""  # noqa: S608 - constant fragments; {sort}/{order} come from SORT_KEYS/ORDERS only
SELECT_ONE = f"""
SELECT {ROW_COLUMNS} FROM {cluster_health.FLEET_FROM_SQL} WHERE c.name = $2
"""  # noqa: S608 - constant fragments


@dataclasses.dataclass(frozen=True)
class ClusterQuery:
    """Which clusters, in which order, which page."""

    search: str = ""
    status: str | None = None
    health: tuple[str, ...] = ()
    sort: str = "name"
    order: str = "asc"
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def __post_init__(self) -> None:
        """Refuse what no query can answer, naming the parameter."""
        validation.text(self.search, "search", MAX_SEARCH)
        if self.status is not None and self.status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        for state in self.health:
            if state not in cluster_health.HEALTH_STATES:
                states = ", ".join(cluster_health.HEALTH_STATES)
                raise BadRequest(f"health must be a comma-separated list of {states}")
        if self.sort not in SORT_KEYS:
            raise BadRequest(f"sort must be one of {', '.join(SORT_KEYS)}")
        if self.order not in ORDERS:
            raise BadRequest("order must be asc or desc")
        validation.integer(self.limit, "limit", 1, MAX_LIMIT)
        validation.integer(self.offset, "offset", 0, MAX_OFFSET)

    @classmethod
    def from_params(cls, params: MultiMapping[str]) -> ClusterQuery:
        """Read a query string; unknown or repeated parameters are refused by name."""
        for key in params:
            if key not in QUERY_PARAMETERS:
                raise BadRequest(f"{key[:64]} is not a known query parameter")
        values: dict[str, Any] = {}
        for key in QUERY_PARAMETERS:
            given = params.getall(key, [])
            if len(given) > 1:
                raise BadRequest(f"{key} must be given once")
            if given:
                values[key] = given[0]
        if "health" in values:
            # Leave it out for any health; an empty item ("", "warning,,") is refused.
            values["health"] = validation.word_list(
                values["health"], "health", cluster_health.HEALTH_STATES, 200
            )
        for key in ("limit", "offset"):
            if key in values:
                values[key] = _int_param(values[key], key)
        if "status" in values:
            values["status"] = values["status"] or None
        return cls(**values)


def _int_param(value: str, field: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise BadRequest(f"{field} must be a non-negative integer")
    return int(value)


def _like_pattern(search: str) -> str | None:
    if not search:
        return None
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _number(value: Decimal | None) -> int:
    return int(value) if value is not None else 0


def cluster_view(row: asyncpg.Record, stale_after: float) -> dict[str, Any]:
    """A cluster with its latest heartbeat, health, warnings and usage ratios."""
    view = cluster_dict(row)
    view.update(
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
        tunnel_connected_at=(
            row["tunnel_connected_at"].isoformat() if row["tunnel_connected_at"] else None
        ),
    )
    return view


def _filter_args(settings: Settings, query: ClusterQuery) -> list[Any]:
    return [
        settings.stale_after_seconds,
        _like_pattern(query.search),
        query.status,
        list(query.health) or None,
    ]


async def list_cluster_page(
    pool: asyncpg.Pool, settings: Settings, query: ClusterQuery
) -> dict[str, Any]:
    """One page of clusters and how many match the filters in all."""
    statement = SELECT_PAGE.format(sort=SORT_KEYS[query.sort], order=ORDERS[query.order])
    args = _filter_args(settings, query)
    rows = await pool.fetch(statement, *args, query.limit, query.offset)
    stale_after = settings.stale_after_seconds
    return {
        "clusters": [cluster_view(row, stale_after) for row in rows if row["name"] is not None],
        "total": rows[0]["total"],
        "limit": query.limit,
        "offset": query.offset,
    }


async def get_cluster_view(pool: asyncpg.Pool, settings: Settings, name: str) -> dict[str, Any]:
    """One cluster as the list shows it; 404 if unknown."""
    row = await pool.fetchrow(SELECT_ONE, settings.stale_after_seconds, name)
    if row is None:
        raise NotFound(f"no cluster named {name!r}")
    return cluster_view(row, settings.stale_after_seconds)
