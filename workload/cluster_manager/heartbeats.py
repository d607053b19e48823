"""Heartbeats: the status payload a cluster sends every minute, checked and stored."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from cluster_manager import validation as v
from cluster_manager.errors import BadRequest

MAX_STATUS_ENTRIES = 64
MAX_STATUS_LENGTH = 64
MAX_COUNT = 10_000_000
MAX_POOLS = 10_000
MAX_MEMBERS = 1_000
MAX_NAME = 255
MAX_URL = 2048

# One statement, one round trip: refreshes the cluster's heartbeat time and overwrites its
# details. A cluster removed by any process has no row to update, so nothing is written and
# the heartbeat is refused, whatever a cache says.
STORE_HEARTBEAT = """
WITH cluster AS (
    UPDATE remote_clusters SET last_status_update_at = now()
    WHERE id = $1 AND status = 'ACTIVE'
    RETURNING id
)
INSERT INTO remote_cluster_details AS d (
    cluster_id, cpu_total_count, cpu_load_1, cpu_load_5, cpu_load_15,
    memory_total_amount, memory_usage, instance_count, member_count,
    instance_statuses, member_statuses, ceph_statuses, storage_pool_usages,
    server_metrics, ui_url
)
SELECT id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 FROM cluster
ON CONFLICT (cluster_id) DO UPDATE SET
    cpu_total_count = EXCLUDED.cpu_total_count,
    cpu_load_1 = EXCLUDED.cpu_load_1,
    cpu_load_5 = EXCLUDED.cpu_load_5,
    cpu_load_15 = EXCLUDED.cpu_load_15,
    memory_total_amount = EXCLUDED.memory_total_amount,
    memory_usage = EXCLUDED.memory_usage,
    instance_count = EXCLUDED.instance_count,
    member_count = EXCLUDED.member_count,
    instance_statuses = EXCLUDED.instance_statuses,
    member_statuses = EXCLUDED.member_statuses,
    ceph_statuses = EXCLUDED.ceph_statuses,
    storage_pool_usages = EXCLUDED.storage_pool_usages,
    server_metrics = EXCLUDED.server_metrics,
    ui_url = EXCLUDED.ui_url
RETURNING cluster_id
"""


@dataclasses.dataclass(frozen=True)
class MemberMetrics:
    """The LXD metrics text one member sent."""

    member: str
    service: str
    metrics: str


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """A checked status payload."""

    cpu_total_count: int
    cpu_load_1: float
    cpu_load_5: float
    cpu_load_15: float
    memory_total_amount: int
    memory_usage: int
    instance_statuses: list[dict[str, Any]]
    member_statuses: list[dict[str, Any]]
    ceph_statuses: list[dict[str, Any]]
    storage_pool_usages: list[dict[str, Any]]
    server_metrics: list[MemberMetrics]
    ui_url: str

    @property
    def instance_count(self) -> int:
        """Instances in any status."""
        return sum(entry["count"] for entry in self.instance_statuses)

    @property
    def member_count(self) -> int:
        """Members in any status."""
        return sum(entry["count"] for entry in self.member_statuses)


def _list(payload: dict[str, Any], field: str, max_entries: int) -> list[Any]:
    value = payload.get(field)
    if value is None:  # Go sends a nil slice as null
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{field} must be a list")
    if len(value) > max_entries:
        raise BadRequest(f"{field} must have at most {max_entries} entries")
    return value


def _object(entry: Any, field: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise BadRequest(f"{field} entries must be objects")
    return entry


def _statuses(payload: dict[str, Any], field: str) -> list[dict[str, Any]]:
    merged: dict[str, int] = {}
    for index, raw in enumerate(_list(payload, field, MAX_STATUS_ENTRIES)):
        entry = _object(raw, field)
        status = v.text(entry.get("status"), f"{field}[{index}].status", MAX_STATUS_LENGTH)
        count = v.integer(entry.get("count"), f"{field}[{index}].count", 0, MAX_COUNT)
        merged[status] = merged.get(status, 0) + count
    return [{"status": status, "count": count} for status, count in merged.items()]


def _pools(payload: dict[str, Any]) -> list[dict[str, Any]]:
    field = "storage_pool_usages"
    pools = []
    for index, raw in enumerate(_list(payload, field, MAX_POOLS)):
        entry = _object(raw, field)
        prefix = f"{field}[{index}]"
        total = v.integer(entry.get("total"), f"{prefix}.total")
        usage = v.integer(entry.get("usage"), f"{prefix}.usage")
        pools.append(
            {
                "name": v.text(entry.get("name"), f"{prefix}.name", MAX_NAME),
                "member": v.text(entry.get("member"), f"{prefix}.member", MAX_NAME, default=""),
                "total": total,
                "usage": usage,
            }
        )
    return pools


def _metrics(payload: dict[str, Any]) -> list[MemberMetrics]:
    field = "server_metrics"
    members = []
    for index, raw in enumerate(_list(payload, field, MAX_MEMBERS)):
        entry = _object(raw, field)
        prefix = f"{field}[{index}]"
        metrics = entry.get("metrics")
        if metrics is not None and not isinstance(metrics, str):
            raise BadRequest(f"{prefix}.metrics must be a string")
        members.append(
            MemberMetrics(
                member=v.text(entry.get("member"), f"{prefix}.member", MAX_NAME, default=""),
                service=v.text(entry.get("service"), f"{prefix}.service", 64, default=""),
                metrics=metrics or "",
            )
        )
    return members


def _ui_url(payload: dict[str, Any]) -> str:
    url = v.text(payload["ui_url"], "ui_url", MAX_URL)
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise BadRequest("ui_url must be an http or https URL")
    return url


# The client sends every one of these on every heartbeat (PROTOCOL.md); lists may be null.
REQUIRED_KEYS = (
    "ceph_statuses",
    "cpu_total_count",
    "cpu_load_1",
    "cpu_load_5",
    "cpu_load_15",
    "memory_total_amount",
    "memory_usage",
    "storage_pool_usages",
    "member_statuses",
    "instance_statuses",
    "server_metrics",
    "ui_url",
)


def parse_heartbeat(body: bytes) -> Heartbeat:
    """Check a status payload against the client's contract; unknown keys are ignored."""
    payload = v.parse_json_object(body)
    for key in REQUIRED_KEYS:
        if key not in payload:
            raise BadRequest(f"{key} is missing")
    return Heartbeat(
        cpu_total_count=v.integer(payload["cpu_total_count"], "cpu_total_count", 0, 10**7),
        cpu_load_1=v.decimal_string(payload["cpu_load_1"], "cpu_load_1"),
        cpu_load_5=v.decimal_string(payload["cpu_load_5"], "cpu_load_5"),
        cpu_load_15=v.decimal_string(payload["cpu_load_15"], "cpu_load_15"),
        memory_total_amount=v.integer(payload["memory_total_amount"], "memory_total_amount"),
        memory_usage=v.integer(payload["memory_usage"], "memory_usage"),
        instance_statuses=_statuses(payload, "instance_statuses"),
        member_statuses=_statuses(payload, "member_statuses"),
        ceph_statuses=_statuses(payload, "ceph_statuses"),
        storage_pool_usages=_pools(payload),
        server_metrics=_metrics(payload),
        ui_url=_ui_url(payload),
    )


def metrics_summary(heartbeat: Heartbeat) -> list[dict[str, Any]]:
    """What is kept of server_metrics in the database: who sent how much.

    The metrics text itself (hundreds of KiB per member) goes to Prometheus by remote write when
    COS is related; writing it into PostgreSQL every minute would be most of the database load.
    """
    return [
        {"member": m.member, "service": m.service, "metrics_bytes": len(m.metrics)}
        for m in heartbeat.server_metrics
    ]


async def store_heartbeat(pool: asyncpg.Pool, cluster_id: int, heartbeat: Heartbeat) -> bool:
    """Overwrite the cluster's details; False when the cluster no longer exists."""
    stored = await pool.fetchval(
        STORE_HEARTBEAT,
        cluster_id,
        heartbeat.cpu_total_count,
        heartbeat.cpu_load_1,
        heartbeat.cpu_load_5,
        heartbeat.cpu_load_15,
        heartbeat.memory_total_amount,
        heartbeat.memory_usage,
        heartbeat.instance_count,
        heartbeat.member_count,
        heartbeat.instance_statuses,
        heartbeat.member_statuses,
        heartbeat.ceph_statuses,
        heartbeat.storage_pool_usages,
        metrics_summary(heartbeat),
        heartbeat.ui_url,
    )
    return stored is not None
