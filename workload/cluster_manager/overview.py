"""Fleet aggregates for the overview page: one statement for the totals, one for the warnings.

The overview takes the cluster list's filters, and each figure is the sum of what the list
shows for the same filter (tests/workload/test_management_service.py checks each one).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import msgspec

from cluster_manager import cluster_health
from cluster_manager.cluster_health import ClusterWarning, Health
from cluster_manager.cluster_listing import (
    FILTER_SQL,
    ClusterFilter,
    ClusterQuery,
    filter_args,
    list_cluster_page,
)
from cluster_manager.clusters import StatusCount
from cluster_manager.fields import Bytes, Count, Ratio, Timestamp
from cluster_manager.fleet_settings import stale_after_seconds
from cluster_manager.settings import Settings

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


def _distribution(kind: str) -> str:
    """SQL: one kind's status distribution, largest first, as a JSON list."""
    return f"""
    coalesce(jsonb_agg(jsonb_build_object('status', status, 'count', total)
                       ORDER BY total DESC, status) FILTER (WHERE kind = '{kind}'), '[]'::jsonb)
    """


# $1..$10 are the list's filters (cluster_listing.FILTER_SQL). ``fleet`` is narrow (no JSON)
# and read twice; ``statuses`` unpacks the three status lists of the matching heartbeats once.
# A cluster's summed load: the daemon divides by its CPU count when it sends one.
SELECT_OVERVIEW = f"""
WITH fleet AS MATERIALIZED (
    SELECT c.id, c.status, h.health, d.cpu_total_count,
           CASE WHEN d.cpu_total_count > 0 THEN d.cpu_total_count END AS cpus,
           d.cpu_load_1 * greatest(d.cpu_total_count, 1) AS load_1,
           d.cpu_load_5 * greatest(d.cpu_total_count, 1) AS load_5,
           d.cpu_load_15 * greatest(d.cpu_total_count, 1) AS load_15,
           d.memory_total_amount, d.memory_usage, d.instance_count, d.member_count,
           d.storage_total, d.storage_usage
    FROM {cluster_health.FLEET_FROM_SQL}
    WHERE {FILTER_SQL}
),
statuses AS MATERIALIZED (
    SELECT list.kind, entry.status, sum(entry.count) AS total
    FROM fleet JOIN remote_cluster_details d ON d.cluster_id = fleet.id
    CROSS JOIN LATERAL (VALUES ('instance', d.instance_statuses),
                               ('member', d.member_statuses),
                               ('ceph', d.ceph_statuses)) AS list (kind, entries)
    CROSS JOIN LATERAL jsonb_to_recordset(
        CASE WHEN jsonb_typeof(list.entries) = 'array' THEN list.entries ELSE '[]' END
    ) AS entry (status text, count bigint)
    GROUP BY 1, 2
)
SELECT
    totals.*,
    (SELECT coalesce(jsonb_object_agg(status, total), '{{}}'::jsonb)
     FROM (SELECT status, count(*) AS total FROM fleet GROUP BY status) AS counted
    ) AS cluster_statuses,
    distributions.*
FROM (
    SELECT
        count(*) AS clusters,
        count(*) FILTER (WHERE health = 'healthy') AS healthy,
        count(*) FILTER (WHERE health = 'error') AS error,
        count(*) FILTER (WHERE health = 'warning') AS warning,
        count(*) FILTER (WHERE health = 'stale') AS stale,
        count(*) FILTER (WHERE health = 'pending') AS pending,
        count(*) FILTER (WHERE reporting) AS reporting,
        coalesce(sum(instance_count), 0) AS instances,
        coalesce(sum(member_count), 0) AS members,
        coalesce(sum(member_count) FILTER (WHERE reporting), 0) AS reporting_members,
        coalesce(sum(cpus) FILTER (WHERE reporting), 0) AS cpu_total_count,
        coalesce(bool_and(cpus IS NOT NULL) FILTER (WHERE reporting), false) AS all_cpus,
        coalesce(sum(load_1) FILTER (WHERE reporting), 0) AS cpu_load_1,
        coalesce(sum(load_5) FILTER (WHERE reporting), 0) AS cpu_load_5,
        coalesce(sum(load_15) FILTER (WHERE reporting), 0) AS cpu_load_15,
        coalesce(sum(memory_total_amount), 0) AS memory_total,
        coalesce(sum(memory_usage), 0) AS memory_usage,
        coalesce(sum(storage_total), 0) AS storage_total,
        coalesce(sum(storage_usage), 0) AS storage_usage
    FROM (
        SELECT *, health IN ('error', 'warning', 'healthy') AND cpu_total_count IS NOT NULL
                  AS reporting
        FROM fleet
    ) AS flagged
) AS totals,
(
    SELECT
        {_distribution("instance")} AS instance_statuses,
        {_distribution("member")} AS member_statuses,
        {_distribution("ceph")} AS ceph_statuses
    FROM statuses
) AS distributions
"""  # noqa: S608 - constant fragments

ATTENTION_STATES = ("stale", "error", "warning")


def _ratio(usage: int, total: int) -> float | None:
    return usage / total if total else None


async def _no_page() -> None:
    return None


async def fleet_overview(
    pool: asyncpg.Pool, settings: Settings, fleet_filter: ClusterFilter | None = None
) -> Overview:
    """Everything the overview page shows, for the clusters the filter selects (all: None)."""
    fleet_filter = fleet_filter or ClusterFilter()
    stale_after = await stale_after_seconds(pool, settings)
    wanted = [s for s in ATTENTION_STATES if s in fleet_filter.health or not fleet_filter.health]
    fields = msgspec.structs.asdict(fleet_filter)
    fields["health"] = tuple(wanted)
    attention_query = ClusterQuery(**fields, sort="health", limit=MAX_WARNING_CLUSTERS)
    # Two statements on two connections at once: the aggregates and the warning list.
    (row,), attention = await asyncio.gather(
        pool.fetch(SELECT_OVERVIEW, *filter_args(stale_after, fleet_filter)),
        list_cluster_page(pool, settings, attention_query, stale_after) if wanted else _no_page(),
    )
    attention_total = attention.total if attention is not None else 0
    attention_clusters = attention.clusters if attention is not None else []
    all_cpus = row["all_cpus"]
    cpu_total = int(row["cpu_total_count"]) if all_cpus else 0
    members = int(row["reporting_members"])
    memory_total, memory_usage = int(row["memory_total"]), int(row["memory_usage"])
    storage_total, storage_usage = int(row["storage_total"]), int(row["storage_usage"])
    return Overview(
        clusters=ClusterCounts(
            total=row["clusters"],
            reporting=row["reporting"],
            by_health=ByHealth(**{state: row[state] for state in cluster_health.HEALTH_STATES}),
            by_status=row["cluster_statuses"],
        ),
        instances=Distribution(total=int(row["instances"]), statuses=row["instance_statuses"]),
        members=Distribution(total=int(row["members"]), statuses=row["member_statuses"]),
        ceph=CephStatuses(statuses=row["ceph_statuses"]),
        cpu=CpuTotals(
            clusters=row["reporting"],
            members=members,
            load_1=round(row["cpu_load_1"], 2),
            load_5=round(row["cpu_load_5"], 2),
            load_15=round(row["cpu_load_15"], 2),
            load_1_per_member=_ratio(row["cpu_load_1"], members),
            total_count=cpu_total,
            load_1_per_cpu=_ratio(row["cpu_load_1"], cpu_total),
        ),
        memory=Usage(memory_total, memory_usage, _ratio(memory_usage, memory_total)),
        storage=Usage(storage_total, storage_usage, _ratio(storage_usage, storage_total)),
        warnings=Attention(
            total=attention_total,
            clusters=[
                AttentionCluster(
                    c.name, c.health, c.warnings, c.last_status_update_at, c.heartbeat_age_seconds
                )
                for c in attention_clusters
            ],
            truncated=attention_total > len(attention_clusters),
        ),
        stale_after_seconds=stale_after,
        generated_at=datetime.now(UTC),
    )
