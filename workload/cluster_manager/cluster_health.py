"""A cluster's health: its state, computed in SQL, and its warnings, explained in words.

States, most urgent first:

- ``stale``: no heartbeat for longer than ``settings.stale_after_seconds`` (a cluster that never
  sent one is stale once that long has passed since it joined);
- ``warning``: heartbeats arrive, but memory or a storage pool is above the cluster's threshold;
- ``pending``: joined recently and has not sent its first heartbeat yet;
- ``healthy``: heartbeats arrive and nothing is above a threshold.

The SQL below is the one definition used to filter, sort and count; ``warnings`` explains the
same decision for the rows a caller shows, with the same floating-point comparisons.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec

from cluster_manager.fields import Bytes, Percent

Health = Literal["stale", "warning", "pending", "healthy"]
HEALTH_STATES: tuple[str, ...] = get_args(Health)
STALE, WARNING, PENDING, HEALTHY = HEALTH_STATES

MAX_POOL_WARNINGS = 10

# Needs ``c`` (remote_clusters) and ``d`` (remote_cluster_details, LEFT JOINed); parameter $1
# is the staleness limit in seconds.
OVER_THRESHOLD_SQL = """
(d.memory_usage_ratio * 100 > c.memory_threshold
 OR d.storage_max_usage_ratio * 100 > c.disk_threshold)
"""
HEALTH_SQL = f"""
CASE
    WHEN coalesce(c.last_status_update_at, c.joined_at)
         <= (SELECT now() - make_interval(secs => $1)) THEN 'stale'
    WHEN c.last_status_update_at IS NULL THEN 'pending'
    WHEN {OVER_THRESHOLD_SQL} THEN 'warning'
    ELSE 'healthy'
END
"""
# Sorting by health puts the most urgent first.
HEALTH_RANK_SQL = """
CASE h.health WHEN 'stale' THEN 0 WHEN 'warning' THEN 1 WHEN 'pending' THEN 2 ELSE 3 END
"""
# Seconds since the last heartbeat (or since joining, when there was none yet).
HEARTBEAT_AGE_SQL = """
extract(epoch FROM now() - coalesce(c.last_status_update_at, c.joined_at))::double precision
"""
# FROM clause giving ``c``, ``d`` and ``h.health``.
FLEET_FROM_SQL = f"""
remote_clusters c
LEFT JOIN remote_cluster_details d ON d.cluster_id = c.id
CROSS JOIN LATERAL (SELECT {HEALTH_SQL} AS health) h
"""


Message = Annotated[str, msgspec.Meta(description="for people: what and how much")]


class StaleWarning(msgspec.Struct, tag="stale", tag_field="kind"):
    """No heartbeat for longer than the staleness limit."""

    message: Message
    seconds_since_heartbeat: float
    stale_after_seconds: float


class MemoryWarning(msgspec.Struct, tag="memory", tag_field="kind"):
    """Memory usage is above the cluster's threshold."""

    message: Message
    usage: Bytes
    total: Bytes
    usage_percent: float
    threshold: Percent


class StoragePoolWarning(msgspec.Struct, tag="storage_pool", tag_field="kind"):
    """A storage pool is fuller than the cluster's disk threshold."""

    message: Message
    pool: str
    member: Annotated[str, msgspec.Meta(description="empty for a shared (remote) pool")]
    usage: Bytes
    total: Bytes
    usage_percent: float
    threshold: Percent


class StoragePoolsWarning(msgspec.Struct, tag="storage_pools", tag_field="kind"):
    """More pools are above the threshold than are listed one by one."""

    message: Message
    count: Annotated[int, msgspec.Meta(ge=1, description="pools not listed")]
    threshold: Percent


ClusterWarning = StaleWarning | MemoryWarning | StoragePoolWarning | StoragePoolsWarning


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _percent(ratio: float) -> float:
    return round(ratio * 100, 2)


def _stale_warning(row: Any, stale_after: float) -> StaleWarning:
    age = row["heartbeat_age"]
    if row["last_status_update_at"] is None:
        message = f"no heartbeat since joining {_duration(age)} ago"
    else:
        message = f"no heartbeat for {_duration(age)}"
    return StaleWarning(
        message=f"{message} (stale after {_duration(stale_after)})",
        seconds_since_heartbeat=round(age, 1),
        stale_after_seconds=stale_after,
    )


def _memory_warning(row: Any) -> MemoryWarning | None:
    total, usage, threshold = (
        row["memory_total_amount"],
        row["memory_usage"],
        row["memory_threshold"],
    )
    if not total:
        return None
    ratio = float(usage) / float(total)  # as PostgreSQL divides double precision
    if not ratio * 100 > threshold:
        return None
    return MemoryWarning(
        message=f"memory usage {_percent(ratio):g}% is above the {threshold}% threshold",
        usage=usage,
        total=total,
        usage_percent=_percent(ratio),
        threshold=threshold,
    )


def _pool_warnings(row: Any) -> list[ClusterWarning]:
    threshold = row["disk_threshold"]
    over = []
    for pool in row["storage_pool_usages"] or []:
        if pool["total"] > 0:
            ratio = float(pool["usage"]) / float(pool["total"])
            if ratio * 100 > threshold:
                over.append((ratio, pool))
    over.sort(key=lambda item: (-item[0], item[1]["name"], item[1]["member"]))
    warnings: list[ClusterWarning] = []
    for ratio, pool in over[:MAX_POOL_WARNINGS]:
        where = f" on {pool['member']}" if pool["member"] else ""
        warnings.append(
            StoragePoolWarning(
                message=(
                    f"storage pool {pool['name']}{where} is {_percent(ratio):g}% full, "
                    f"above the {threshold}% threshold"
                ),
                pool=pool["name"],
                member=pool["member"],
                usage=pool["usage"],
                total=pool["total"],
                usage_percent=_percent(ratio),
                threshold=threshold,
            )
        )
    if len(over) > MAX_POOL_WARNINGS:
        more = len(over) - MAX_POOL_WARNINGS
        warnings.append(
            StoragePoolsWarning(
                message=f"{more} more storage pools are above the {threshold}% threshold",
                count=more,
                threshold=threshold,
            )
        )
    return warnings


def warnings(row: Any, stale_after: float) -> list[ClusterWarning]:
    """What is wrong with a cluster, each entry with a kind, a message and the numbers.

    ``row`` has the cluster and details columns plus ``heartbeat_age`` (HEARTBEAT_AGE_SQL).
    Usage warnings come from the latest heartbeat, also when it is old.
    """
    found: list[ClusterWarning] = []
    if row["health"] == STALE:
        found.append(_stale_warning(row, stale_after))
    if row["cpu_total_count"] is not None:
        if memory := _memory_warning(row):
            found.append(memory)
        found.extend(_pool_warnings(row))
    return found
