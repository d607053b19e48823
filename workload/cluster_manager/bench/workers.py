"""Heartbeats with 1 and 2 worker processes against the no-op baseline, in one run.

``python -m cluster_manager.bench workers [--clusters N] [--duration S] [--workers 1,2]``
takes the options of :mod:`cluster_manager.bench` and:

1. enrols the fleet once (real joins) against ``cluster-manager serve --workers 1``;
2. for each worker count: restarts the server with that count on the same database, loads it
   for ``--duration`` seconds and reads, over the window, the server's CPU (the supervisor and
   every worker), the SQL statements per accepted heartbeat (pg_stat_statements) and, at its
   end, each worker's RSS;
3. loads the baseline (the same TLS stack, a no-op handler) the same way;
4. prints one table: heartbeats/s, CPU per heartbeat, ratio to the baseline, RSS per worker,
   SQL per heartbeat, and the machine's load average at each window's end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

from cluster_manager.bench.heartbeats import measure, parse_args
from cluster_manager.bench.load import Workers
from cluster_manager.bench.report import Row, statement_kind, table
from cluster_manager.bench.servers import BaselineServer, RealServer, prioritise, rss_bytes
from cluster_manager.processes import stop_process
from cluster_manager.settings import render_config

logger = logging.getLogger("cluster_manager.bench")


def worker_pids(pid: int) -> list[int]:
    """The worker processes of a ``serve --workers N`` supervisor (itself when N is 1)."""
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(entry.path, "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            command = Path(entry.path, "cmdline").read_bytes()
            if parent == pid and b"spawn_main" in command:
                children.append(int(entry.name))
    return sorted(children) or [pid]


def restart(real: RealServer, workers: int) -> None:
    """Restart the server with ``workers`` processes on the same database and ports."""
    stop_process(real.process)
    values = tomllib.loads(real.config.read_text())
    values["workers"] = workers
    real.config.write_text(render_config(values))
    real._spawn(  # the bench's own helper
        [sys.executable, "-m", "cluster_manager.cli", "--config", str(real.config), "serve"]
    )
    deadline = time.monotonic() + 30
    while len(worker_pids(real.pid)) < workers and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # every worker listening


def sql_per_heartbeat(statements: Sequence[tuple[str, int]], heartbeats: int) -> str:
    """``writes / reads / other`` statements per accepted heartbeat."""
    totals: dict[str, int] = dict.fromkeys(("write", "read", "other"), 0)
    for query, calls in statements:
        totals[statement_kind(query)] += calls
    if not heartbeats:
        return "-"
    return " / ".join(f"{totals[kind] / heartbeats:.2f}" for kind in ("write", "read", "other"))


def render(
    rows: list[tuple[int, Row, list[int], str, float]],
    baseline: Row,
    baseline_load: float,
    parameters: dict[str, object],
) -> str:
    """The report: the usual table, then one line a worker count."""
    lines = [
        "# Heartbeats by worker count",
        "",
        ", ".join(f"{key}: {value}" for key, value in parameters.items()),
        "",
        table([row for _, row, _, _, _ in rows] + [baseline]),
        "",
        "| workers | heartbeats/s | x baseline | server CPU-ms/heartbeat "
        "| PostgreSQL CPU-ms/heartbeat | p99 ms "
        "| RSS per worker MiB | SQL per heartbeat (write / read / other) | load average |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for count, row, rss, sql, load in rows:
        per = row.server_cpu / row.heartbeats * 1000 if row.heartbeats else float("nan")
        database = (row.database_cpu or 0.0) / row.heartbeats * 1000 if row.heartbeats else 0.0
        ratio = row.rate / baseline.rate if baseline.rate else float("nan")
        lines.append(
            f"| {count} | {row.rate:.1f} | {ratio:.2f} | {per:.2f} | {database:.2f} | "
            f"{row.percentile(0.99) * 1000:.0f} | "
            f"{', '.join(f'{r / 2**20:.0f}' for r in rss)} | {sql} | {load:.2f} |"
        )
    base_per = baseline.server_cpu / baseline.heartbeats * 1000 if baseline.heartbeats else 0.0
    lines += [
        f"| baseline | {baseline.rate:.1f} | 1.00 | {base_per:.2f} | - | "
        f"{baseline.percentile(0.99) * 1000:.0f} | - | - | {baseline_load:.2f} |",
        "",
        f"Machine: {os.cpu_count()} CPUs; the load generator shares them, so the throughput of"
        " 2 workers is bounded by the cores left to the server; CPU per heartbeat is not.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    counts = [1, 2]
    if "--workers" in argv:
        at = argv.index("--workers")
        counts = [int(n) for n in argv[at + 1].split(",")]
        del argv[at : at + 2]
    args = parse_args(argv, "workers")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    prioritise(args.nice)
    directory = Path(tempfile.mkdtemp(prefix="mcm-bench-"))
    directory.chmod(0o711)
    real, baseline = RealServer(directory), BaselineServer(directory)
    names = [f"bench-{i:05d}" for i in range(args.clusters)]
    load = None
    try:
        real.start()
        baseline.start()
        load = Workers(names, args.processes, args.metrics_kib * 1024, args.concurrency)
        payload_bytes = load.setup()
        tokens = dict(zip(names, real.create_tokens_quickly(names), strict=True))
        joined = load.join(tokens)
        if joined["200"] != len(names):
            logger.error("not every cluster joined: %s", dict(joined))
            return 1
        rows = []
        for count in counts:
            restart(real, count)
            statements: list[tuple[str, int]] = []
            rss: list[int] = []

            def at_end(statements: list = statements, rss: list = rss) -> None:
                statements.extend(real.statements())
                rss.extend(rss_bytes(p) for p in worker_pids(real.pid))

            logger.info("loading cluster-manager with %d workers for %.0f s", count, args.duration)
            row = measure(
                f"cluster-manager, {count} worker{'s' if count > 1 else ''}", load, tokens,
                real, args, real.database_cpu_seconds, at_start=real.reset_statements,
                at_end=at_end,
            )  # fmt: skip
            rows.append(
                (
                    count,
                    row,
                    rss,
                    sql_per_heartbeat(statements, row.heartbeats),
                    os.getloadavg()[0],
                )
            )
        real.stop()
        logger.info("loading the baseline for %.0f s", args.duration)
        base_tokens = {name: baseline.token_for(name) for name in names}
        base = measure("baseline (no-op handler)", load, base_tokens, baseline, args)
        report = render(
            rows,
            base,
            os.getloadavg()[0],
            {
                "clusters": args.clusters,
                "seconds per server": args.duration,
                "load processes": args.processes,
                "in flight per process": args.concurrency,
                "niceness": args.nice,
                "mean heartbeat body": f"{payload_bytes / 1024:.0f} KiB",
            },
        )
        print(report)
        Path(args.output).write_text(report)
        return 0
    finally:
        if load is not None:
            load.close()
        baseline.stop()
        real.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
