"""Fleet aggregates for the overview page: one statement for the totals, one for the warnings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import msgspec

from cluster_manager import cluster_health
from cluster_manager.cluster_health import ClusterWarning, Health
from cluster_manager.cluster_listing import ClusterQuery, list_cluster_page
from cluster_manager.clusters import StatusCount
from cluster_manager.fields import Bytes, Count, Ratio, Timestamp
from cluster_manager.settings import Settings

MAX_WARNING_CLUSTERS = 100


class ByHealth(msgspec.Struct):
    """Clusters in each health state."""

    stale: Count
    warning: Count
    pending: Count
    healthy: Count


class ClusterCounts(msgspec.Struct):
    """How many clusters, by health and by status."""

    total: Count
    reporting: Annotated[Count, msgspec.Meta(description="clusters with heartbeat data")]
    by_health: ByHealth
    by_status: Annotated[dict[str, Count], msgspec.Meta(description="cluster status -> clusters")]


class Distribution(msgspec.Struct):
    """A total and how it splits by status, largest first."""

    total: Count
    statuses: list[StatusCount]


class CephStatuses(msgspec.Struct):
    """Ceph daemons by status, largest first."""

    statuses: list[StatusCount]


class CpuTotals(msgspec.Struct):
    """CPUs and load averages summed over the fleet."""

    total_count: Count
    load_1: float
    load_5: float
    load_15: float
    load_1_ratio: Annotated[Ratio | None, msgspec.Meta(description="load_1 / total_count")]


class Usage(msgspec.Struct):
    """Bytes in total and in use, summed over the fleet."""

    total: Bytes
    usage: Bytes
    usage_ratio: Ratio | None


class AttentionCluster(msgspec.Struct):
    """A cluster that needs attention, with what is wrong."""

    name: str
    health: Annotated[Health, msgspec.Meta(description="stale or warning")]
    warnings: list[ClusterWarning]
    last_status_update_at: Timestamp | None
    heartbeat_age_seconds: float | None


class Attention(msgspec.Struct):
    """The clusters that are stale or warn, most urgent first."""

    total: Annotated[Count, msgspec.Meta(description="stale or warning clusters")]
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


# $1 is the staleness limit in seconds. ``fleet`` is narrow (no JSON) and read twice;
# ``statuses`` unpacks the three status lists of every heartbeat in one pass.
SELECT_OVERVIEW = f"""
WITH fleet AS MATERIALIZED (
    SELECT c.status, h.health,
           d.cpu_total_count, d.cpu_load_1, d.cpu_load_5, d.cpu_load_15,
           d.memory_total_amount, d.memory_usage, d.instance_count, d.member_count,
           d.storage_total, d.storage_usage
    FROM {cluster_health.FLEET_FROM_SQL}
),
statuses AS MATERIALIZED (
    SELECT list.kind, entry.status, sum(entry.count) AS total
    FROM remote_cluster_details d
    CROSS JOIN LATERAL (VALUES ('instance', d.instance_statuses),
                               ('member', d.member_statuses),
                               ('ceph', d.ceph_statuses)) AS list (kind, entries)
    CROSS JOIN LATERAL jsonb_to_recordset(list.entries) AS entry (status text, count bigint)
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
        count(*) FILTER (WHERE health = 'warning') AS warning,
        count(*) FILTER (WHERE health = 'stale') AS stale,
        count(*) FILTER (WHERE health = 'pending') AS pending,
        count(cpu_total_count) AS reporting,
        coalesce(sum(instance_count), 0) AS instances,
        coalesce(sum(member_count), 0) AS members,
        coalesce(sum(cpu_total_count), 0) AS cpu_total_count,
        coalesce(sum(cpu_load_1), 0) AS cpu_load_1,
        coalesce(sum(cpu_load_5), 0) AS cpu_load_5,
        coalesce(sum(cpu_load_15), 0) AS cpu_load_15,
        coalesce(sum(memory_total_amount), 0) AS memory_total,
        coalesce(sum(memory_usage), 0) AS memory_usage,
        coalesce(sum(storage_total), 0) AS storage_total,
        coalesce(sum(storage_usage), 0) AS storage_usage
    FROM fleet
) AS totals,
(
    SELECT
        {_distribution("instance")} AS instance_statuses,
        {_distribution("member")} AS member_statuses,
        {_distribution("ceph")} AS ceph_statuses
    FROM statuses
) AS distributions
"""  # noqa: S608 - constant fragments


def _ratio(usage: int, total: int) -> float | None:
    return usage / total if total else None


async def fleet_overview(pool: asyncpg.Pool, settings: Settings) -> Overview:
    """Everything the overview page shows, for the whole fleet."""
    attention_query = ClusterQuery(
        health=("stale", "warning"),
        sort="health",
        limit=MAX_WARNING_CLUSTERS,
    )
    # Two statements on two connections at once: the aggregates and the warning list.
    (row,), attention = await asyncio.gather(
        pool.fetch(SELECT_OVERVIEW, settings.stale_after_seconds),
        list_cluster_page(pool, settings, attention_query),
    )
    cpu_total = int(row["cpu_total_count"])
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
            total_count=cpu_total,
            load_1=round(row["cpu_load_1"], 2),
            load_5=round(row["cpu_load_5"], 2),
            load_15=round(row["cpu_load_15"], 2),
            load_1_ratio=_ratio(row["cpu_load_1"], cpu_total),
        ),
        memory=Usage(memory_total, memory_usage, _ratio(memory_usage, memory_total)),
        storage=Usage(storage_total, storage_usage, _ratio(storage_usage, storage_total)),
        warnings=Attention(
            total=attention.total,
            clusters=[
                AttentionCluster(
                    c.name, c.health, c.warnings, c.last_status_update_at, c.heartbeat_age_seconds
                )
                for c in attention.clusters
            ],
            truncated=attention.total > len(attention.clusters),
        ),
        stale_after_seconds=settings.stale_after_seconds,
        generated_at=datetime.now(UTC),
    )
