"""Heartbeats: the status payload a cluster sends every minute, checked and stored."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import asyncpg
import msgspec

from cluster_manager.fields import LOAD_REGEX, NO_NUL_REGEX, decode

MAX_STATUS_ENTRIES = 64
MAX_STATUS_LENGTH = 64
MAX_COUNT = 10_000_000
MAX_POOLS = 10_000
MAX_MEMBERS = 1_000
MAX_NAME = 255
MAX_URL = 2048

# One statement, one round trip: refreshes the cluster's heartbeat time and overwrites its
# details. A cluster removed by any process has no row to update, so nothing is written and
# the heartbeat is refused, whatever a cache says. The details row (made when the cluster
# joined, migration 0009) also takes the same heartbeat time, which the list sorts on and
# judges staleness by; the insert is a fallback for a row that is missing.
# A heartbeat overwrites every heartbeat column of the cluster's details row (one place for
# the single statement, the burst statement of heartbeat_writer and the seed).
OVERWRITE_DETAILS = """
ON CONFLICT (cluster_id) DO UPDATE SET
    heartbeat_at = EXCLUDED.heartbeat_at,
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
"""
STORE_HEARTBEAT = (
    """
WITH cluster AS (
    UPDATE remote_clusters SET last_status_update_at = now()
    WHERE id = $1 AND status = 'ACTIVE'
    RETURNING id, name, status, joined_at, last_status_update_at
)
INSERT INTO remote_cluster_details AS d (
    cluster_id, cpu_total_count, cpu_load_1, cpu_load_5, cpu_load_15,
    memory_total_amount, memory_usage, instance_count, member_count,
    instance_statuses, member_statuses, ceph_statuses, storage_pool_usages,
    server_metrics, ui_url, name, cluster_status, joined_at, heartbeat_at
)
SELECT id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, name, status,
       joined_at, last_status_update_at
FROM cluster
"""  # noqa: S608 - constants joined, no value
    + OVERWRITE_DETAILS
    + "RETURNING cluster_id\n"
)


INT64_MAX = 2**63 - 1

Entries = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
Bytes64 = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX, description="bytes")]
Load = Annotated[
    str, msgspec.Meta(pattern=LOAD_REGEX, description='a load average as a string, e.g. "0.42"')
]
Text = Annotated[str, msgspec.Meta(max_length=MAX_NAME, pattern=NO_NUL_REGEX)]


class StatusCount(msgspec.Struct):
    """How many instances, members or Ceph daemons are in one status."""

    status: Annotated[str, msgspec.Meta(max_length=MAX_STATUS_LENGTH, pattern=NO_NUL_REGEX)]
    count: Entries


class StoragePoolUsage(msgspec.Struct):
    """One storage pool's size and usage."""

    name: Text
    member: Annotated[
        str,
        msgspec.Meta(
            max_length=MAX_NAME,
            pattern=NO_NUL_REGEX,
            description="empty for a shared (remote) pool",
        ),
    ]
    total: Bytes64
    usage: Bytes64


class MemberMetrics(msgspec.Struct):
    """The LXD metrics text one member sent (Prometheus text format)."""

    member: Text = ""
    service: Annotated[str, msgspec.Meta(max_length=64, pattern=NO_NUL_REGEX)] = ""
    metrics: str = ""


# A list the Go client sends as null when it is empty (a nil slice).
Statuses = Annotated[list[StatusCount], msgspec.Meta(max_length=MAX_STATUS_ENTRIES)] | None
_LISTS = ("instance_statuses", "member_statuses", "ceph_statuses", "storage_pool_usages")


class Heartbeat(msgspec.Struct, kw_only=True):
    """The status payload (PROTOCOL.md): every key required, lists may be null, others ignored.

    Decoding validates it; ``__post_init__`` makes null lists empty and merges repeated statuses.
    """

    ceph_statuses: Statuses
    cpu_total_count: Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
    cpu_load_1: Load
    cpu_load_5: Load
    cpu_load_15: Load
    memory_total_amount: Bytes64
    memory_usage: Bytes64
    storage_pool_usages: (
        Annotated[list[StoragePoolUsage], msgspec.Meta(max_length=MAX_POOLS)] | None
    )
    member_statuses: Statuses
    instance_statuses: Statuses
    server_metrics: Annotated[list[MemberMetrics], msgspec.Meta(max_length=MAX_MEMBERS)] | None
    ui_url: Annotated[str, msgspec.Meta(max_length=MAX_URL, pattern=NO_NUL_REGEX)]

    def __post_init__(self) -> None:
        """Null lists become empty; a status sent twice is counted once, summed."""
        for name in _LISTS:
            entries = getattr(self, name)
            if entries is None:
                setattr(self, name, [])
            elif name != "storage_pool_usages" and len({e.status for e in entries}) < len(entries):
                merged: dict[str, int] = {}
                for entry in entries:
                    merged[entry.status] = merged.get(entry.status, 0) + entry.count
                setattr(self, name, [StatusCount(k, v) for k, v in merged.items()])
        if self.server_metrics is None:
            self.server_metrics = []
        if self.ui_url and urlsplit(self.ui_url).scheme not in ("http", "https"):
            raise ValueError("ui_url: must be an http or https URL")

    @property
    def instance_count(self) -> int:
        """Instances in any status."""
        return sum(entry.count for entry in self.instance_statuses or ())

    @property
    def member_count(self) -> int:
        """Members in any status."""
        return sum(entry.count for entry in self.member_statuses or ())


# The client sends every one of these on every heartbeat (PROTOCOL.md).
REQUIRED_KEYS: tuple[str, ...] = Heartbeat.__struct_fields__


def parse_heartbeat(body: bytes) -> Heartbeat:
    """Check a status payload against the client's contract, in one decoding call."""
    return decode(body, Heartbeat)


class MemberMetricsSummary(msgspec.Struct):
    """How many bytes of metrics a member's service sent in the latest heartbeat."""

    member: str
    service: str
    metrics_bytes: Annotated[int, msgspec.Meta(ge=0)]


def metrics_summary(heartbeat: Heartbeat) -> list[MemberMetricsSummary]:
    """What is kept of server_metrics in the database: who sent how much.

    The metrics text itself (hundreds of KiB per member) goes to Prometheus by remote write when
    COS is related; writing it into PostgreSQL every minute would be most of the database load.
    """
    return [
        MemberMetricsSummary(m.member, m.service, len(m.metrics))
        for m in heartbeat.server_metrics or ()
    ]


async def store_heartbeat(pool: asyncpg.Pool, cluster_id: int, heartbeat: Heartbeat) -> bool:
    """Overwrite the cluster's details; False when the cluster no longer exists."""
    stored = await pool.fetchval(
        STORE_HEARTBEAT,
        cluster_id,
        heartbeat.cpu_total_count,
        float(heartbeat.cpu_load_1),
        float(heartbeat.cpu_load_5),
        float(heartbeat.cpu_load_15),
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
