"""A cluster's health: its state, computed in SQL, and its warnings, explained in words.

States, most urgent first:

- ``stale``: no heartbeat for longer than the fleet's staleness limit (a cluster that never
  sent one is stale once that long has passed since it joined);
- ``error``: the cluster is partly down: an LXD member is neither Online nor Evacuated
  (Offline, Blocked, ...) or a MicroCeph member is not ONLINE;
- ``warning``: a member is Evacuated, instances are in Error, or memory or a storage pool is
  above the cluster's effective threshold (its own, else the fleet default);
- ``pending``: joined recently and has not sent its first heartbeat yet;
- ``healthy``: heartbeats arrive and none of the above.

Status values are the ones the MicroCloud daemon forwards unchanged
(canonical/microcloud cmd/microcloudd/cluster_manager_task.go: members at line 263 from LXD's
``api.ClusterMember.Status``, which lxd/db/node.go ``ToAPI`` sets to Online, Evacuated,
Offline or Blocked; Ceph at line 179 from microcluster's ``MemberStatus``: ONLINE,
UNREACHABLE, NOT TRUSTED, NOT FOUND; instances at line 201 from LXD's instance status, e.g.
Running, Stopped, Frozen, Error). They are compared case-insensitively.

The SQL below is the one definition used to filter, sort and count; ``warnings`` explains the
same decision for the rows a caller shows, with the same floating-point comparisons.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec

from cluster_manager.fields import Bytes, Count, Percent
from cluster_manager.fleet_settings import SETTINGS_JOIN_SQL

Health = Literal["stale", "error", "warning", "pending", "healthy"]
HEALTH_STATES: tuple[str, ...] = get_args(Health)
STALE, ERROR, WARNING, PENDING, HEALTHY = HEALTH_STATES
Severity = Literal["error", "warning"]

# Statuses (lower case) that are not a problem, and those that are a milder one.
MEMBER_UP = frozenset({"online"})
MEMBER_MILD = frozenset({"evacuated"})
CEPH_UP = frozenset({"online"})
INSTANCE_BAD = frozenset({"error"})

MAX_POOL_WARNINGS = 10

# Needs ``c`` (remote_clusters), ``d`` (remote_cluster_details, LEFT JOINed); parameter $1 is
# the staleness limit in seconds.
# The time part is computed here; the rest is ``d.health_rank``, a generated column
# (migration 0009) PostgreSQL computes in the heartbeat's own statement from the status counts
# (generated too, migration 0006), the usage ratios and the cluster's effective thresholds
# (kept current by triggers): 1 error, 2 warning, 3 pending (no heartbeat yet), 4 healthy.
HEALTH_SQL = """
CASE
    WHEN coalesce(d.heartbeat_at, c.joined_at)
         <= (SELECT now() - make_interval(secs => $1)) THEN 'stale'
    WHEN d.heartbeat_at IS NULL THEN 'pending'
    WHEN d.health_rank = 1 THEN 'error'
    WHEN d.health_rank = 2 THEN 'warning'
    ELSE 'healthy'
END
"""
# Sorting by health puts the most urgent first.
HEALTH_RANK_SQL = """
CASE h.health WHEN 'stale' THEN 0 WHEN 'error' THEN 1 WHEN 'warning' THEN 2
              WHEN 'pending' THEN 3 ELSE 4 END
"""
# Seconds since the last heartbeat (or since joining, when there was none yet).
HEARTBEAT_AGE_SQL = """
extract(epoch FROM now() - coalesce(c.last_status_update_at, c.joined_at))::double precision
"""
# FROM clause giving ``c``, ``d`` and ``h.health``.
FLEET_FROM_SQL = f"""
remote_clusters c
LEFT JOIN remote_cluster_details d ON d.cluster_id = c.id
{SETTINGS_JOIN_SQL}
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


class MembersWarning(msgspec.Struct, tag="members", tag_field="kind", kw_only=True):
    """Cluster members in a status other than Online: "2 of 3 members Offline"."""

    message: Message
    severity: Annotated[Severity, msgspec.Meta(description="error: down; warning: Evacuated")]
    status: Annotated[str, msgspec.Meta(description="as the cluster reported it")]
    count: Count
    total: Annotated[Count, msgspec.Meta(description="members in any status")]


class CephWarning(msgspec.Struct, tag="ceph", tag_field="kind", kw_only=True):
    """MicroCeph members in a status other than ONLINE: "1 of 3 Ceph members UNREACHABLE"."""

    message: Message
    severity: Severity
    status: str
    count: Count
    total: Annotated[Count, msgspec.Meta(description="Ceph members in any status")]


class InstancesWarning(msgspec.Struct, tag="instances", tag_field="kind", kw_only=True):
    """Instances in Error: "5 instances in Error"."""

    message: Message
    severity: Severity
    status: str
    count: Count
    total: Annotated[Count, msgspec.Meta(description="instances in any status")]


ClusterWarning = (
    StaleWarning
    | MembersWarning
    | CephWarning
    | InstancesWarning
    | MemoryWarning
    | StoragePoolWarning
    | StoragePoolsWarning
)


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


def _entries(statuses: Any) -> list[tuple[str, int]]:
    """(status, count) of a stored status list (JSON null or missing: none), largest first."""
    if not isinstance(statuses, list):
        return []
    found = [(str(e["status"]), int(e["count"])) for e in statuses if e.get("count", 0) > 0]
    return sorted(found, key=lambda item: (-item[1], item[0]))


def _status_warnings(row: Any) -> list[ClusterWarning]:
    """Members, Ceph members and instances in a bad status, as the SQL decides it."""
    found: list[ClusterWarning] = []
    members = _entries(row["member_statuses"])
    member_total = sum(count for _, count in members)
    # Members down first, then the milder Evacuated.
    members.sort(key=lambda item: item[0].lower() in MEMBER_MILD)
    for status, count in members:
        if status.lower() in MEMBER_UP:
            continue
        severity: Severity = "warning" if status.lower() in MEMBER_MILD else "error"
        found.append(
            MembersWarning(
                message=f"{count} of {member_total} member{_s(member_total)} {status}",
                severity=severity,
                status=status,
                count=count,
                total=member_total,
            )
        )
    ceph = _entries(row["ceph_statuses"])
    ceph_total = sum(count for _, count in ceph)
    for status, count in ceph:
        if status.lower() not in CEPH_UP:
            found.append(
                CephWarning(
                    message=f"{count} of {ceph_total} Ceph member{_s(ceph_total)} {status}",
                    severity="error",
                    status=status,
                    count=count,
                    total=ceph_total,
                )
            )
    instances = _entries(row["instance_statuses"])
    instance_total = sum(count for _, count in instances)
    for status, count in instances:
        if status.lower() in INSTANCE_BAD:
            found.append(
                InstancesWarning(
                    message=f"{count} instance{_s(count)} in {status}",
                    severity="warning",
                    status=status,
                    count=count,
                    total=instance_total,
                )
            )
    return found


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def warnings(row: Any, stale_after: float) -> list[ClusterWarning]:
    """What is wrong with a cluster, each entry with a kind, a message and the numbers.

    ``row`` has the cluster and details columns plus ``heartbeat_age`` (HEARTBEAT_AGE_SQL).
    Usage warnings come from the latest heartbeat, also when it is old.
    """
    found: list[ClusterWarning] = []
    if row["health"] == STALE:
        found.append(_stale_warning(row, stale_after))
    if row["cpu_total_count"] is not None:
        found.extend(_status_warnings(row))
        if memory := _memory_warning(row):
            found.append(memory)
        found.extend(_pool_warnings(row))
    return found
