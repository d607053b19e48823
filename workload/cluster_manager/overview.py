"""Fleet aggregates for the overview page, from a summary every unit shares.

The overview takes the cluster list's filters, and each figure is the sum of what the list
shows for the same filter (tests/workload/test_fleet_health.py checks each one).

Scanning the whole fleet for every request grows with the fleet, so one unit at a time (an
advisory lock) computes the figures grouped by cluster status and health into ``fleet_summary``
and every unit reads that row. A request finding it older than REFRESH_AFTER seconds starts the
next computation in the background and is answered from the stored one; one finding it older
than its ``max_age`` (nobody looked for a while) waits for a fresh one. Heartbeats never touch
the summary, so they contend for nothing. Health is computed at summary time, so a cluster
that stops sending heartbeats is counted stale within REFRESH_AFTER plus one computation.
A status or health filter adds up groups; other filters (search, statuses, usage ranges) are
computed live with the same statement restricted to the filter.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import msgspec

from cluster_manager import cluster_health
from cluster_manager.cluster_health import ClusterWarning, Health
from cluster_manager.cluster_listing import (
    FILTER_PARAMETERS,
    FILTER_SQL,
    SELECT_NAMED,
    ClusterFilter,
    cluster_view,
    filter_args,
)
from cluster_manager.clusters import StatusCount
from cluster_manager.fields import Bytes, Count, Ratio, Timestamp
from cluster_manager.fleet_settings import stale_after_seconds
from cluster_manager.settings import Settings

logger = logging.getLogger(__name__)

MAX_WARNING_CLUSTERS = 100


class ByHealth(msgspec.Struct):
    """Clusters in each health state."""

    stale: Count
    error: Count
    warning: Count
    pending: Count
    healthy: Count


class ClusterCounts(msgspec.Struct):
    """How many clusters, by health and by status."""

    total: Count
    reporting: Annotated[
        Count,
        msgspec.Meta(description="clusters whose heartbeats arrive (error, warning or healthy)"),
    ]
    by_health: ByHealth
    by_status: Annotated[dict[str, Count], msgspec.Meta(description="cluster status -> clusters")]


class Distribution(msgspec.Struct):
    """A total and how it splits by status, largest first."""

    total: Count
    statuses: list[StatusCount]


class CephStatuses(msgspec.Struct):
    """Ceph daemons by status, largest first."""

    statuses: list[StatusCount]


class CpuTotals(msgspec.Struct, kw_only=True):
    """Load averages of the reporting clusters, summed over their members.

    A cluster that reports its CPU count sends its load divided by it; the shipped daemon sends
    a count of 0 and its members' summed load (canonical/microcloud
    cmd/microcloudd/cluster_manager_task.go, lines 283-291), so load per CPU is only known when
    every cluster in the figure reports its count.
    """

    clusters: Annotated[Count, msgspec.Meta(description="reporting clusters in the figure")]
    members: Annotated[Count, msgspec.Meta(description="their members")]
    load_1: Annotated[float, msgspec.Meta(description="summed 1-minute load of every member")]
    load_5: float
    load_15: float
    load_1_per_member: Annotated[float | None, msgspec.Meta(description="load_1 / members")]
    total_count: Annotated[
        Count, msgspec.Meta(description="CPUs, when every cluster reports them; else 0")
    ]
    load_1_per_cpu: Annotated[
        Ratio | None,
        msgspec.Meta(description="load_1 / total_count; null unless every cluster reports CPUs"),
    ]


class Usage(msgspec.Struct):
    """Bytes in total and in use, summed over the fleet."""

    total: Bytes
    usage: Bytes
    usage_ratio: Ratio | None


class AttentionCluster(msgspec.Struct):
    """A cluster that needs attention, with what is wrong."""

    name: str
    health: Annotated[Health, msgspec.Meta(description="stale, error or warning")]
    warnings: list[ClusterWarning]
    last_status_update_at: Timestamp | None
    heartbeat_age_seconds: float | None


class Attention(msgspec.Struct):
    """The clusters that are stale, in error or warn, most urgent first."""

    total: Annotated[Count, msgspec.Meta(description="stale, error or warning clusters")]
    clusters: Annotated[list[AttentionCluster], msgspec.Meta(max_length=MAX_WARNING_CLUSTERS)]
    truncated: bool


class Overview(msgspec.Struct):
    """Fleet aggregates for the overview page."""

    clusters: ClusterCounts
    instances: Distribution
    members: Distribution
    ceph: CephStatuses
    cpu: CpuTotals
    memory: Usage
    storage: Usage
    warnings: Attention
    stale_after_seconds: float
    generated_at: Timestamp
    computed_at: Annotated[
        Timestamp,
        msgspec.Meta(description="when these figures were computed (every unit serves the same)"),
    ]
    age_seconds: Annotated[
        float, msgspec.Meta(ge=0, description="how old the figures are, in seconds")
    ]


# $1..$10 are the list's filters (cluster_listing.FILTER_SQL). The figures come out grouped by
# cluster status and health, one JSON object per group: the summary keeps them for the whole
# fleet and answers a status or health filter by adding up the groups that match; any other
# filter runs this statement live. ``fleet`` is narrow (no JSON); ``statuses`` unpacks the three
# status lists once. A cluster's summed load: the daemon divides by its CPU count when it sends
# one. ``attention`` names the first clusters of a stale, error or warning group by name.
SELECT_GROUPS = f"""
WITH fleet AS MATERIALIZED (
    SELECT c.id, c.name, c.status, h.health,
           h.health IN ('error', 'warning', 'healthy') AND d.cpu_total_count IS NOT NULL
               AS reporting,
           CASE WHEN d.cpu_total_count > 0 THEN d.cpu_total_count END AS cpus,
           d.cpu_load_1 * greatest(d.cpu_total_count, 1) AS load_1,
           d.cpu_load_5 * greatest(d.cpu_total_count, 1) AS load_5,
           d.cpu_load_15 * greatest(d.cpu_total_count, 1) AS load_15,
           d.memory_total_amount, d.memory_usage, d.instance_count, d.member_count,
           d.storage_total, d.storage_usage
    FROM {cluster_health.FLEET_FROM_SQL}
    WHERE {FILTER_SQL}
),
statuses AS (
    SELECT fleet.status AS cluster_status, fleet.health, list.kind, entry.status,
           sum(entry.count) AS count
    FROM fleet JOIN remote_cluster_details d ON d.cluster_id = fleet.id
    CROSS JOIN LATERAL (VALUES ('instance', d.instance_statuses),
                               ('member', d.member_statuses),
                               ('ceph', d.ceph_statuses)) AS list (kind, entries)
    CROSS JOIN LATERAL jsonb_to_recordset(
        CASE WHEN jsonb_typeof(list.entries) = 'array' THEN list.entries ELSE '[]' END
    ) AS entry (status text, count bigint)
    GROUP BY 1, 2, 3, 4
),
distributions AS (
    SELECT cluster_status AS status, health,
           jsonb_agg(jsonb_build_object('kind', kind, 'status', status, 'count', count))
               AS statuses
    FROM statuses GROUP BY 1, 2
),
totals AS (
    SELECT
        status, health,
        count(*) AS clusters,
        count(*) FILTER (WHERE reporting) AS reporting,
        coalesce(sum(instance_count), 0) AS instances,
        coalesce(sum(member_count), 0) AS members,
        coalesce(sum(member_count) FILTER (WHERE reporting), 0) AS reporting_members,
        coalesce(sum(cpus) FILTER (WHERE reporting), 0) AS cpu_total_count,
        bool_and(cpus IS NOT NULL) FILTER (WHERE reporting) AS all_cpus,
        coalesce(sum(load_1) FILTER (WHERE reporting), 0) AS cpu_load_1,
        coalesce(sum(load_5) FILTER (WHERE reporting), 0) AS cpu_load_5,
        coalesce(sum(load_15) FILTER (WHERE reporting), 0) AS cpu_load_15,
        coalesce(sum(memory_total_amount), 0) AS memory_total,
        coalesce(sum(memory_usage), 0) AS memory_usage,
        coalesce(sum(storage_total), 0) AS storage_total,
        coalesce(sum(storage_usage), 0) AS storage_usage,
        coalesce((array_agg(name ORDER BY name)
                  FILTER (WHERE health IN ('stale', 'error', 'warning'))
                 )[1:{MAX_WARNING_CLUSTERS}], '{{}}') AS attention
    FROM fleet GROUP BY status, health
)
SELECT coalesce(jsonb_agg(to_jsonb(totals)
                          || jsonb_build_object('statuses', coalesce(d.statuses, '[]'))),
                '[]'::jsonb) AS groups
FROM totals LEFT JOIN distributions d USING (status, health)
"""  # noqa: S608 - constant fragments
NO_FILTER: list[object] = [None] * (FILTER_PARAMETERS - 1)
# The whole fleet's groups, stored for every unit; $1 is the staleness limit.
REFRESH_SUMMARY = f"""
WITH computed AS ({SELECT_GROUPS})
INSERT INTO fleet_summary AS f (id, computed_at, stale_after_seconds, groups)
SELECT true, now(), $1, groups FROM computed
ON CONFLICT (id) DO UPDATE SET
    computed_at = EXCLUDED.computed_at,
    stale_after_seconds = EXCLUDED.stale_after_seconds,
    groups = EXCLUDED.groups
"""  # noqa: S608 - constant fragments
SELECT_SUMMARY = """
SELECT computed_at, stale_after_seconds, groups,
       extract(epoch FROM now() - computed_at)::double precision AS age
FROM fleet_summary
"""
# One unit at a time computes the summary; the others keep serving the one stored.
SUMMARY_LOCK_ID = 0x4D434D02
TRY_SUMMARY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
WAIT_SUMMARY_LOCK = "SELECT pg_advisory_xact_lock($1)"
# The summary is recomputed in the background once older than this, and computed before
# answering once older than MAX_SUMMARY_AGE (nobody looked for a while).
REFRESH_AFTER = 2.0
MAX_SUMMARY_AGE = 10.0
# Summaries being computed by this process, per pool: at most one at a time.
_refreshing: dict[int, asyncio.Task[None]] = {}

ATTENTION_STATES = ("stale", "error", "warning")
# Filters the summary answers by adding up groups; any other filter is computed live.
SUMMARY_FILTERS = frozenset({"status", "health"})


def _ratio(usage: float, total: float) -> float | None:
    return usage / total if total else None


class Summary(msgspec.Struct, frozen=True):
    """The fleet's figures grouped by status and health, and when they were computed."""

    groups: list[dict[str, Any]]
    computed_at: datetime
    age: float
    stale_after: float


def summarised(fleet_filter: ClusterFilter) -> bool:
    """Whether the stored summary answers this filter (status and health filters only)."""
    default = ClusterFilter()
    return all(
        getattr(fleet_filter, name) == getattr(default, name)
        for name in ClusterFilter.__struct_fields__
        if name not in SUMMARY_FILTERS
    )


async def refresh_summary(pool: asyncpg.Pool, stale_after: float, *, wait: bool) -> bool:
    """Compute the whole fleet's groups and store them for every unit, one unit at a time.

    With ``wait`` false, gives up (False) when another process is computing them right now.
    """
    async with pool.acquire() as connection, connection.transaction():
        if wait:
            await connection.execute(WAIT_SUMMARY_LOCK, SUMMARY_LOCK_ID)
        elif not await connection.fetchval(TRY_SUMMARY_LOCK, SUMMARY_LOCK_ID):
            return False
        await connection.execute(REFRESH_SUMMARY, stale_after, *NO_FILTER)
    return True


async def _read_summary(pool: asyncpg.Pool) -> Summary | None:
    row = await pool.fetchrow(SELECT_SUMMARY)
    if row is None:
        return None
    return Summary(
        row["groups"], row["computed_at"], max(row["age"], 0.0), row["stale_after_seconds"]
    )


async def _refresh_quietly(pool: asyncpg.Pool, stale_after: float) -> None:
    try:
        await refresh_summary(pool, stale_after, wait=False)
    except (OSError, asyncpg.PostgresError):
        logger.warning("could not refresh the fleet summary", exc_info=True)
    finally:
        _refreshing.pop(id(pool), None)


async def fleet_summary(pool: asyncpg.Pool, stale_after: float, max_age: float) -> Summary:
    """The stored summary when at most ``max_age`` seconds old, else a freshly computed one.

    A summary older than REFRESH_AFTER is served while this process computes the next one in
    the background (unless some unit is computing it already).
    """
    summary = await _read_summary(pool)
    if summary is None or summary.age > max_age or summary.stale_after != stale_after:
        await refresh_summary(pool, stale_after, wait=True)
        summary = await _read_summary(pool)
        if summary is None:
            raise RuntimeError("the fleet summary was not stored")  # pragma: no cover
        return summary
    if summary.age > REFRESH_AFTER and id(pool) not in _refreshing:
        _refreshing[id(pool)] = asyncio.create_task(_refresh_quietly(pool, stale_after))
    return summary


def _matching(groups: list[dict[str, Any]], fleet_filter: ClusterFilter) -> list[dict[str, Any]]:
    return [
        g
        for g in groups
        if (not fleet_filter.status or g["status"] == fleet_filter.status)
        and (not fleet_filter.health or g["health"] in fleet_filter.health)
    ]


def _distribution(groups: list[dict[str, Any]], kind: str) -> list[StatusCount]:
    totals: dict[str, int] = {}
    for group in groups:
        for entry in group["statuses"]:
            if entry["kind"] == kind:
                totals[entry["status"]] = totals.get(entry["status"], 0) + int(entry["count"])
    ordered = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [StatusCount(status, count) for status, count in ordered]


def _attention_names(groups: list[dict[str, Any]]) -> tuple[list[str], int]:
    """The first attention clusters, most urgent state first then by name, and how many."""
    names: list[str] = []
    total = 0
    for state in ATTENTION_STATES:
        in_state = [g for g in groups if g["health"] == state]
        total += sum(int(g["clusters"]) for g in in_state)
        names.extend(sorted(name for g in in_state for name in g["attention"]))
    return names[:MAX_WARNING_CLUSTERS], total


def _sum(groups: list[dict[str, Any]], field: str) -> Any:
    return sum(g[field] for g in groups)


async def _attention(
    pool: asyncpg.Pool, names: list[str], stale_after: float
) -> list[AttentionCluster]:
    if not names:
        return []
    rows = {row["name"]: row for row in await pool.fetch(SELECT_NAMED, stale_after, names)}
    shown = []
    for name in names:  # a cluster removed since the summary is left out
        if (row := rows.get(name)) is not None:
            c = cluster_view(row, stale_after)
            shown.append(
                AttentionCluster(
                    c.name, c.health, c.warnings, c.last_status_update_at, c.heartbeat_age_seconds
                )
            )
    return shown


async def fleet_overview(
    pool: asyncpg.Pool,
    settings: Settings,
    fleet_filter: ClusterFilter | None = None,
    *,
    max_age: float = 0.0,
) -> Overview:
    """Everything the overview page shows, for the clusters the filter selects (all: None).

    A status or health filter (or none) is answered from the stored summary when it is at most
    ``max_age`` seconds old (0: computed for this call); other filters are computed live.
    """
    fleet_filter = fleet_filter or ClusterFilter()
    stale_after = await stale_after_seconds(pool, settings)
    if summarised(fleet_filter):
        summary = await fleet_summary(pool, stale_after, max_age)
        groups = _matching(summary.groups, fleet_filter)
        computed_at, age = summary.computed_at, summary.age
    else:
        groups = await pool.fetchval(SELECT_GROUPS, *filter_args(stale_after, fleet_filter))
        computed_at, age = datetime.now(UTC), 0.0
    names, attention_total = _attention_names(groups)
    attention = await _attention(pool, names, stale_after)
    reporting = [g for g in groups if g["reporting"]]
    all_cpus = bool(reporting) and all(g["all_cpus"] for g in reporting)
    cpu_total = int(_sum(groups, "cpu_total_count")) if all_cpus else 0
    members = int(_sum(groups, "reporting_members"))
    load_1, load_5, load_15 = (float(_sum(groups, f"cpu_load_{n}")) for n in (1, 5, 15))
    memory_total, memory_usage = (
        int(_sum(groups, "memory_total")),
        int(_sum(groups, "memory_usage")),
    )
    storage_total = int(_sum(groups, "storage_total"))
    storage_usage = int(_sum(groups, "storage_usage"))
    by_health = dict.fromkeys(cluster_health.HEALTH_STATES, 0)
    by_status: dict[str, int] = {}
    for group in groups:
        by_health[group["health"]] += int(group["clusters"])
        by_status[group["status"]] = by_status.get(group["status"], 0) + int(group["clusters"])
    reporting_clusters = int(_sum(groups, "reporting"))
    return Overview(
        clusters=ClusterCounts(
            total=int(_sum(groups, "clusters")),
            reporting=reporting_clusters,
            by_health=ByHealth(**by_health),
            by_status=by_status,
        ),
        instances=Distribution(int(_sum(groups, "instances")), _distribution(groups, "instance")),
        members=Distribution(int(_sum(groups, "members")), _distribution(groups, "member")),
        ceph=CephStatuses(_distribution(groups, "ceph")),
        cpu=CpuTotals(
            clusters=reporting_clusters,
            members=members,
            load_1=round(load_1, 2),
            load_5=round(load_5, 2),
            load_15=round(load_15, 2),
            load_1_per_member=_ratio(load_1, members),
            total_count=cpu_total,
            load_1_per_cpu=_ratio(load_1, cpu_total),
        ),
        memory=Usage(memory_total, memory_usage, _ratio(memory_usage, memory_total)),
        storage=Usage(storage_total, storage_usage, _ratio(storage_usage, storage_total)),
        warnings=Attention(
            total=attention_total,
            clusters=attention,
            truncated=attention_total > len(attention),
        ),
        stale_after_seconds=stale_after,
        generated_at=datetime.now(UTC),
        computed_at=computed_at,
        age_seconds=round(age, 1),
    )
