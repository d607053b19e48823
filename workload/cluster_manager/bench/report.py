"""The benchmark's numbers and the Markdown table they are printed as."""

from __future__ import annotations

import collections
import dataclasses
import os
import platform
import re
import ssl
from collections.abc import Sequence

from cluster_manager.bench.load import LoadResult


@dataclasses.dataclass(frozen=True)
class Row:
    """One server's measurements over the window."""

    server: str
    duration: float
    outcomes: collections.Counter[str]
    latencies: list[float]
    server_cpu: float  # CPU-seconds of the server process in the window
    database_cpu: float | None  # CPU-seconds of PostgreSQL in the window, when there is one
    load_cpu: float  # CPU-seconds of the load generator in the window
    machine_cpu: float  # CPU-seconds of the whole machine in the window
    rss: int = 0  # resident memory of the server process at the window's end, bytes

    @classmethod
    def from_results(
        cls,
        server: str,
        duration: float,
        results: Sequence[LoadResult],
        server_cpu: float,
        database_cpu: float | None = None,
        machine_cpu: float = 0.0,
        rss: int = 0,
    ) -> Row:
        """Merge the workers' results."""
        outcomes: collections.Counter[str] = collections.Counter()
        latencies: list[float] = []
        for result in results:
            outcomes.update(result.outcomes)
            latencies += result.latencies
        return cls(
            server,
            duration,
            outcomes,
            sorted(latencies),
            server_cpu,
            database_cpu,
            sum(r.cpu_seconds for r in results),
            machine_cpu,
            rss,
        )

    @property
    def heartbeats(self) -> int:
        """Heartbeats answered with 200."""
        return self.outcomes["200"]

    @property
    def other_cpu(self) -> float:
        """CPU-seconds the rest of the machine used in the window."""
        ours = self.server_cpu + (self.database_cpu or 0.0) + self.load_cpu
        return max(0.0, self.machine_cpu - ours)

    @property
    def rate(self) -> float:
        """Successful heartbeats per second."""
        return self.heartbeats / self.duration

    def percentile(self, fraction: float) -> float:
        """Latency in seconds at a fraction (nearest rank)."""
        if not self.latencies:
            return float("nan")
        index = min(len(self.latencies) - 1, max(0, round(fraction * len(self.latencies)) - 1))
        return self.latencies[index]

    def cells(self) -> list[str]:
        """The row's table cells."""
        failures = sum(n for outcome, n in self.outcomes.items() if outcome != "200")
        per_heartbeat = self.server_cpu / self.heartbeats * 1000 if self.heartbeats else 0.0
        database = "-" if self.database_cpu is None else f"{self.database_cpu / self.duration:.2f}"
        return [
            self.server,
            f"{self.rate:.1f}",
            str(failures),
            f"{self.percentile(0.5) * 1000:.0f}",
            f"{self.percentile(0.99) * 1000:.0f}",
            f"{self.server_cpu / self.duration:.2f}",
            f"{per_heartbeat:.2f}",
            f"{self.rss / 2**20:.0f}",
            database,
            f"{self.load_cpu / self.duration:.2f}",
            f"{self.other_cpu / self.duration:.2f}",
        ]


HEADERS = [
    "server",
    "heartbeats/s",
    "failures",
    "p50 ms",
    "p99 ms",
    "server CPU-s/s",
    "server CPU-ms/heartbeat",
    "server RSS MiB",
    "PostgreSQL CPU-s/s",
    "load generator CPU-s/s",
    "everything else CPU-s/s",
]


def table(rows: Sequence[Row]) -> str:
    """A Markdown table of the rows."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def statement_kind(query: str) -> str:
    """``write``, ``read`` or ``other`` (transaction control, session resets) for a statement."""
    words = query.lstrip("( \n\t").split(None, 1)
    first = words[0].upper() if words else ""
    if first in ("INSERT", "UPDATE", "DELETE", "MERGE", "COPY"):
        return "write"
    if first == "WITH":
        return "write" if re.search(r"\b(INSERT|UPDATE|DELETE)\b", query, re.I) else "read"
    if first in ("SELECT", "VALUES", "TABLE", "SHOW"):
        return "read"
    return "other"


def sql_report(statements: Sequence[tuple[str, int]], heartbeats: int) -> list[str]:
    """SQL statements per accepted heartbeat by kind, and the statements that ran most."""
    totals: collections.Counter[str] = collections.Counter()
    for query, calls in statements:
        totals[statement_kind(query)] += calls
    per = {kind: totals[kind] / heartbeats if heartbeats else float("nan") for kind in
           ("write", "read", "other")}  # fmt: skip
    lines = [
        f"**SQL per accepted heartbeat (pg_stat_statements): {per['write']:.2f} writes, "
        f"{per['read']:.2f} reads, {per['other']:.2f} other** "
        "(target: at most one write, no read).",
        "",
        "| calls | per heartbeat | kind | statement |",
        "|---|---|---|---|",
    ]
    for query, calls in list(statements)[:8]:
        shown = " ".join(query.split())[:90].replace("|", "\\|")
        per_heartbeat = calls / heartbeats if heartbeats else float("nan")
        lines.append(f"| {calls} | {per_heartbeat:.3f} | {statement_kind(query)} | `{shown}` |")
    return lines


def render(
    ours: Row,
    baseline: Row,
    parameters: dict[str, object],
    statements: Sequence[tuple[str, int]] = (),
) -> str:
    """The whole report: parameters, table, ratio, SQL per heartbeat, failures."""
    ratio = ours.rate / baseline.rate if baseline.rate else float("nan")
    lines = [
        "# Heartbeat benchmark",
        "",
        ", ".join(f"{key}: {value}" for key, value in parameters.items()),
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{ssl.OPENSSL_VERSION}.",
        "",
        table([ours, baseline]),
        "",
        f"**Throughput: {ratio:.2f} x the baseline** "
        f"({ours.rate:.1f} against {baseline.rate:.1f} heartbeats/s).",
        "",
        "CPU-s/s is CPU-seconds used per second of the window (this machine has "
        f"{os.cpu_count()}); 'everything else' is the rest of the machine's busy time: "
        "when it is not near 0, other work competed with the benchmark. RSS is read from "
        "/proc/<pid>/status (VmRSS) at the end of the window.",
        "",
        *sql_report(statements, ours.heartbeats),
        "",
    ]
    for row in (ours, baseline):
        failures = {k: v for k, v in row.outcomes.items() if k != "200"}
        if failures:
            lines.append(f"Failures against {row.server}: {dict(sorted(failures.items()))}")
    return "\n".join(lines) + "\n"
