"""The status payload of a simulated cluster (PROTOCOL.md, "The status payload").

A :class:`StatusGenerator` draws a cluster's shape from its seed (members, memory, storage
pools, MicroCeph or not, instances) and returns one heartbeat payload per call to
:meth:`StatusGenerator.next`, letting ``interval`` seconds pass in between, so values evolve
plausibly and the same seed always gives the same sequence. Like the Go client, it sends every
key every time, empty lists as JSON ``null`` about as often as ``[]``, ``cpu_total_count`` as 0
and the load averages as strings with two decimals.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from typing import Any

from cluster_manager.fleet.metrics import GIB, MemberMetrics
from cluster_manager.heartbeats import REQUIRED_KEYS

DEFAULT_METRICS_BYTES = 20 * 1024
# Every key of the contract, on every heartbeat (PROTOCOL.md): the same list the server checks.
PAYLOAD_KEYS = REQUIRED_KEYS
MEMBER_STATES = ("Online", "Offline", "Evacuated")
INSTANCE_STATES = ("Running", "Stopped", "Frozen", "Error")


@dataclasses.dataclass
class Member:
    """One cluster member and what changes on it."""

    name: str
    cpus: int
    memory_total: int
    memory_used: float
    load: float  # the three load averages follow it, over 1, 5 and 15 minutes
    pool_total: int
    pool_used: float
    metrics: MemberMetrics
    status: str = "Online"
    averages: list[float] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.averages = [self.load, self.load, self.load]

    def follow_load(self, seconds: float) -> None:
        """Move the 1, 5 and 15 minute averages towards the current load, as Linux does."""
        for i, window in enumerate((60.0, 300.0, 900.0)):
            weight = math.exp(-seconds / window)
            self.averages[i] = self.averages[i] * weight + self.load * (1 - weight)


class StatusGenerator:
    """Heartbeat payloads of one simulated cluster, deterministic for a seed."""

    def __init__(
        self,
        seed: int | str = 0,
        *,
        metrics_bytes: int = DEFAULT_METRICS_BYTES,
        interval: float = 60.0,
        members: int | None = None,
        with_instances: bool | None = None,
        with_ceph: bool | None = None,
    ) -> None:
        """Draw a cluster.

        Args:
            seed: makes the cluster and its evolution reproducible.
            metrics_bytes: target size of each member's metrics text when it runs instances.
            interval: simulated seconds between two payloads.
            members: number of members (drawn from 1, 3, 4, 5 when not given).
            with_instances: whether the cluster runs instances (most do; drawn when not given).
            with_ceph: whether MicroCeph is deployed (drawn when not given).
        """
        self._rng = rng = random.Random(f"status-{seed}")  # noqa: S311 - a simulation
        self.interval = interval
        count = members or rng.choices((1, 3, 4, 5), weights=(10, 60, 15, 15))[0]
        self.with_instances = rng.random() < 0.9 if with_instances is None else with_instances
        self.with_ceph = (count >= 3 and rng.random() < 0.6) if with_ceph is None else with_ceph
        # Go sends a nil slice as null; a given client build does so consistently.
        self.nil_when_empty = rng.random() < 0.5
        self.subnet = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
        self.members = [self._new_member(i, metrics_bytes) for i in range(count)]
        self.stopped = rng.randint(0, 4) if self.with_instances else 0
        self.frozen = 0
        self.errored = 0
        self.shared_pool_total = rng.choice((4, 8, 16, 32)) * 1024 * GIB if self.with_ceph else 0
        self.shared_pool_used = self.shared_pool_total * rng.uniform(0.05, 0.6)

    def _new_member(self, index: int, metrics_bytes: int) -> Member:
        rng = self._rng
        cpus = rng.choice((8, 16, 32, 64))
        memory_total = rng.choice((32, 64, 128, 256)) * GIB
        pool_total = rng.choice((250, 500, 1000, 2000)) * GIB
        return Member(
            name=f"micro{index + 1:02d}",
            cpus=cpus,
            memory_total=memory_total,
            memory_used=memory_total * rng.uniform(0.2, 0.7),
            load=cpus * rng.uniform(0.02, 0.5),
            pool_total=pool_total,
            pool_used=pool_total * rng.uniform(0.05, 0.7),
            metrics=MemberMetrics(rng, metrics_bytes, instances_wanted=self.with_instances),
        )

    def _advance(self) -> None:
        rng, seconds = self._rng, self.interval
        for member in self.members:
            if member.status == "Online" and rng.random() < 0.01:
                member.status = rng.choice(("Offline", "Evacuated"))
            elif member.status != "Online" and rng.random() < 0.3:
                member.status = "Online"
            member.load = min(member.cpus * 2.0, max(0.0, member.load + rng.gauss(0, 0.3)))
            member.follow_load(seconds)
            member.memory_used = min(
                member.memory_total * 0.95,
                max(member.memory_total * 0.05, member.memory_used * rng.uniform(0.98, 1.02)),
            )
            member.pool_used = min(member.pool_total * 0.99, member.pool_used + seconds * 1e5)
            member.metrics.advance(seconds)
        self.shared_pool_used = min(
            self.shared_pool_total * 0.99, self.shared_pool_used + seconds * 5e5
        )
        if self.with_instances:
            self.stopped = max(0, self.stopped + rng.choice((-1, 0, 0, 0, 0, 1)))
            self.frozen = 1 if rng.random() < 0.05 else 0
            self.errored = 1 if rng.random() < 0.02 else 0

    def _list(self, items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        return items if items or not self.nil_when_empty else None

    def next(self) -> dict[str, Any]:
        """Return the next heartbeat payload (a JSON-ready dict with every key)."""
        self._advance()
        members = self.members
        load_1, load_5, load_15 = (sum(m.averages[i] for m in members) for i in range(3))
        running = sum(len(m.metrics.instances) for m in members)
        instance_counts = dict(
            zip(INSTANCE_STATES, (running, self.stopped, self.frozen, self.errored), strict=True)
        )
        pools = [
            {
                "name": "local",
                "member": m.name,
                "total": m.pool_total,
                "usage": int(m.pool_used),
            }
            for m in members
        ]
        if self.with_ceph:
            pools.append(
                {
                    "name": "remote",
                    "member": "",
                    "total": self.shared_pool_total,
                    "usage": int(self.shared_pool_used),
                }
            )
        ceph: list[dict[str, Any]] = []
        if self.with_ceph:
            ceph = _counts(("ONLINE" if m.status != "Offline" else "OFFLINE") for m in members)
        return {
            "ceph_statuses": self._list(ceph),
            "cpu_total_count": 0,
            "cpu_load_1": f"{load_1:.2f}",
            "cpu_load_5": f"{load_5:.2f}",
            "cpu_load_15": f"{load_15:.2f}",
            "memory_total_amount": sum(m.memory_total for m in members),
            "memory_usage": sum(int(m.memory_used) for m in members),
            "storage_pool_usages": self._list(pools),
            "member_statuses": self._list(_counts(m.status for m in members)),
            "instance_statuses": self._list(
                [{"status": s, "count": c} for s, c in instance_counts.items() if c]
            ),
            "server_metrics": self._list(
                [
                    {"member": m.name, "metrics": m.metrics.render(), "service": "LXD"}
                    for m in members
                ]
            ),
            "ui_url": f"https://{self.subnet}.1:8443",
        }

    def next_body(self) -> bytes:
        """Return the next payload as the JSON bytes the client sends."""
        return json.dumps(self.next(), separators=(",", ":")).encode()


def _counts(states: Any) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return [{"status": state, "count": count} for state, count in counts.items()]
