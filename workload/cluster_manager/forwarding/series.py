"""What a heartbeat becomes in Prometheus: cluster-level series and the members' LXD metrics.

:func:`build_batch` runs in a worker process (see :mod:`cluster_manager.forwarding.sender`):
parsing and encoding hundreds of KiB of metrics text per heartbeat is CPU work the connector's
event loop must not do.

Cluster-level series, each labelled ``cluster``:

- ``mcm_cluster_instances{status}``, ``mcm_cluster_members{status}`` (the usual statuses are sent
  as 0 when absent, so a status that ends does not linger), ``mcm_cluster_ceph_members{status}``
- ``mcm_cluster_cpu_count``, ``mcm_cluster_load1``, ``mcm_cluster_load5``, ``mcm_cluster_load15``
  (sums over members: shipped clients send ``cpu_total_count`` 0)
- ``mcm_cluster_memory_total_bytes``, ``mcm_cluster_memory_used_bytes``
- ``mcm_cluster_storage_pool_total_bytes{pool, member}``,
  ``mcm_cluster_storage_pool_used_bytes{pool, member}`` (no ``member`` for a shared pool)

Each member's LXD metrics keep their names and labels and gain ``cluster`` and ``member``; a
label of the member's own called ``cluster`` or ``member`` is kept as ``exported_cluster`` or
``exported_member`` (Prometheus's convention for clashing labels).
"""

from __future__ import annotations

import dataclasses
import time

from cluster_manager.forwarding import remote_write
from cluster_manager.forwarding.exposition import Labels, parse_metrics
from cluster_manager.heartbeats import Heartbeat

INSTANCE_STATUSES = ("Running", "Stopped", "Frozen", "Error")
MEMBER_STATUSES = ("Online", "Offline", "Evacuated")
ADDED_LABELS = ("cluster", "member")


@dataclasses.dataclass(frozen=True)
class Submission:
    """An accepted heartbeat waiting to be forwarded."""

    cluster: str
    heartbeat: Heartbeat
    timestamp_ms: int

    @property
    def size(self) -> int:
        """Characters of metrics text: what conversion costs and what the queue holds."""
        return sum(len(member.metrics) for member in self.heartbeat.server_metrics) + 1024


@dataclasses.dataclass(frozen=True)
class Batch:
    """One encoded remote-write request and what went into it."""

    payload: bytes
    heartbeats: int
    series: int
    bad_lines: int
    cpu_seconds: float


def cluster_series(cluster: str, heartbeat: Heartbeat) -> list[tuple[Labels, float]]:
    """The cluster-level series of a heartbeat (labels sorted, ``__name__`` included)."""
    out: list[tuple[Labels, float]] = []

    def add(name: str, value: float, **labels: str) -> None:
        pairs = {"__name__": name, "cluster": cluster}
        pairs.update((key, text) for key, text in labels.items() if text)
        out.append((tuple(sorted(pairs.items())), float(value)))

    for name, entries, usual in (
        ("mcm_cluster_instances", heartbeat.instance_statuses, INSTANCE_STATUSES),
        ("mcm_cluster_members", heartbeat.member_statuses, MEMBER_STATUSES),
        ("mcm_cluster_ceph_members", heartbeat.ceph_statuses, ()),
    ):
        counts = dict.fromkeys(usual, 0)
        counts.update((entry["status"], entry["count"]) for entry in entries)
        for status, count in counts.items():
            add(name, count, status=status)
    add("mcm_cluster_cpu_count", heartbeat.cpu_total_count)
    add("mcm_cluster_load1", heartbeat.cpu_load_1)
    add("mcm_cluster_load5", heartbeat.cpu_load_5)
    add("mcm_cluster_load15", heartbeat.cpu_load_15)
    add("mcm_cluster_memory_total_bytes", heartbeat.memory_total_amount)
    add("mcm_cluster_memory_used_bytes", heartbeat.memory_usage)
    for pool in heartbeat.storage_pool_usages:
        where = {"pool": pool["name"], "member": pool["member"]}
        add("mcm_cluster_storage_pool_total_bytes", pool["total"], **where)
        add("mcm_cluster_storage_pool_used_bytes", pool["usage"], **where)
    return out


def member_series(cluster: str, member: str, text: str) -> tuple[list[tuple[Labels, float]], int]:
    """A member's LXD metrics as series labelled with cluster and member, and the bad lines."""
    parsed = parse_metrics(text)
    added = (("cluster", cluster), ("member", member)) if member else (("cluster", cluster),)
    series: dict[Labels, float] = {}  # a series written twice: the last line wins
    for name, labels, value in parsed.samples:
        if any(key in ADDED_LABELS for key, _ in labels):
            labels = tuple(
                (f"exported_{key}" if key in ADDED_LABELS else key, text) for key, text in labels
            )
        series[tuple(sorted((("__name__", name), *added, *labels)))] = value
    return list(series.items()), parsed.bad_lines


def build_batch(submissions: list[Submission]) -> Batch:
    """Turn heartbeats into one compressed remote-write request (runs in a worker process)."""
    started = time.process_time()
    request = remote_write.WriteRequest()
    series = bad_lines = 0
    for submission in submissions:
        cluster, heartbeat, timestamp = (
            submission.cluster,
            submission.heartbeat,
            submission.timestamp_ms,
        )
        samples = cluster_series(cluster, heartbeat)
        seen_members = set()
        for member in heartbeat.server_metrics:
            if member.member in seen_members:
                continue  # the same member twice would repeat its series with another value
            seen_members.add(member.member)
            found, bad = member_series(cluster, member.member, member.metrics)
            samples += found
            bad_lines += bad
        for labels, value in samples:
            remote_write.add_series(request, labels, value, timestamp)
        series += len(samples)
    payload = remote_write.encode(request)
    return Batch(
        payload=payload,
        heartbeats=len(submissions),
        series=series,
        bad_lines=bad_lines,
        cpu_seconds=time.process_time() - started,
    )
