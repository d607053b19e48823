"""Benchmark: what forwarding costs the server per heartbeat, and heartbeats/s with it on.

``python -m cluster_manager.bench forwarding [--clusters 8] [--heartbeats 48] [--seconds 20]``

Runs ``cluster-manager serve`` as a child process on an embedded PostgreSQL twice, forwarding
off and then on (remote write to a receiver in this process that answers 204), with simulated
3-member clusters whose ``server_metrics`` carry about 200 KiB of LXD metrics per member, sent
over real mutual TLS the way MicroCloud does. Server CPU is user + system time of the server
process and its children (the forwarding worker) from /proc, so the load generator's own CPU
is not counted. Prints a table and writes it to ``--output``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, web
from prometheus_client.parser import text_string_to_metric_families

from cluster_manager import db, tokens
from cluster_manager.bench.servers import (
    HOST,
    UNLIMITED,
    ServerProcess,
    connector_certificate,
    free_port,
    tree_cpu_seconds,
)
from cluster_manager.certificates import ensure_self_signed_files
from cluster_manager.embedded_postgres import EmbeddedPostgres
from cluster_manager.fleet import SimulatedCluster, StatusGenerator
from cluster_manager.forwarding import series as conversion
from cluster_manager.forwarding.series import Submission, build_batch
from cluster_manager.heartbeats import parse_heartbeat
from cluster_manager.settings import load_settings, render_config

METRICS_BYTES = 200 * 1024
MEMBERS = 3


class Receiver:
    """A remote-write endpoint that takes everything (its CPU is not the server's)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests = 0
        self.bytes = 0
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Where the server writes."""
        return f"http://{HOST}:{self.port}/api/v1/write"

    async def start(self) -> None:
        """Listen."""

        async def write(request: web.Request) -> web.Response:
            body = await request.read()
            self.requests += 1
            self.bytes += len(body)
            return web.Response(status=204)

        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/api/v1/write", write)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, HOST, self.port).start()

    async def stop(self) -> None:
        """Stop listening."""
        if self.runner is not None:
            await self.runner.cleanup()


class Server(ServerProcess):
    """``cluster-manager serve`` with rate limits out of the way, forwarding or not."""

    name = "cluster-manager"

    def __init__(self, directory: Path, dsn: str, port: int, remote_write: list[str]) -> None:
        super().__init__(directory)
        self.port = port
        self.ops_port = free_port()
        cert, key, _ = connector_certificate(directory)
        mcert, mkey = directory / "management.crt", directory / "management.key"
        ensure_self_signed_files(mcert, mkey, "bench-management", [HOST])
        (directory / "session.key").write_bytes(b"s" * 32)
        self.config = directory / "forwarding-bench.toml"
        self.config.write_text(
            render_config(
                {
                    "database_dsn": dsn,
                    "log_level": "WARNING",
                    "management_host": HOST,
                    "management_port": free_port(),
                    "management_cert_file": str(mcert),
                    "management_key_file": str(mkey),
                    "connector_host": HOST,
                    "connector_port": port,
                    "connector_cert_file": str(cert),
                    "connector_key_file": str(key),
                    "connector_addresses": [f"{HOST}:{port}"],
                    "ops_host": HOST,
                    "ops_port": self.ops_port,
                    "session_key_file": str(directory / "session.key"),
                    "heartbeat_rate_per_minute": float(UNLIMITED),
                    "heartbeat_burst": UNLIMITED,
                    "connector_rate_per_second": float(UNLIMITED),
                    "connector_burst": UNLIMITED,
                    "probe_rate_per_second": float(UNLIMITED),
                    "probe_burst": UNLIMITED,
                    "unverified_rate_per_second": float(UNLIMITED),
                    "unverified_burst": UNLIMITED,
                    "remote_write_urls": remote_write,
                    "workers": 1,  # the cost of one process's forwarding
                }
            )
        )

    def start(self) -> None:
        """Start and wait until the connector listens."""
        self._spawn(
            [sys.executable, "-m", "cluster_manager.cli", "--config", str(self.config), "serve"]
        )

    async def metric(self, name: str, **labels: str) -> float:
        """One value from the server's /metrics (0 when absent)."""
        async with (
            ClientSession() as session,
            session.get(f"http://{HOST}:{self.ops_port}/metrics") as response,
        ):
            text = await response.text()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    async def drained(self, within: float = 300) -> None:
        """Wait until every accepted heartbeat is converted and sent (or dropped)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            queued = await self.metric("mcm_forward_queue_heartbeats")
            backlog = await self.metric("mcm_forward_backlog_bytes")
            if queued == 0 and backlog == 0:
                return
            await asyncio.sleep(0.5)  # each look renders /metrics: server CPU, not forwarding
        raise TimeoutError("forwarding did not drain")


async def enrol(dsn: str, config: Path, names: list[str]) -> list[SimulatedCluster]:
    """Create tokens with the service function and join through the connector."""
    settings = load_settings(config)
    pool = await db.create_pool(dsn, max_size=2)
    clusters = []
    try:
        for name in names:
            token, _ = await tokens.create_token(pool, settings, name)
            cluster = SimulatedCluster(name)
            await cluster.join(token.encode())
            clusters.append(cluster)
    finally:
        await pool.close()
    return clusters


async def send(
    clusters: list[SimulatedCluster],
    bodies: dict[str, list[bytes]],
    *,
    count: int | None,
    seconds: float | None,
    concurrency: int,
) -> tuple[int, int, float]:
    """Send heartbeats round-robin; return (accepted, failed, elapsed seconds)."""
    order = itertools.cycle([(c, body) for c in clusters for body in bodies[c.name]])
    accepted = failed = 0
    remaining = count
    started = time.monotonic()
    deadline = started + seconds if seconds else None

    async def worker() -> None:
        nonlocal accepted, failed, remaining
        while True:
            if remaining is not None:
                if remaining <= 0:
                    return
                remaining -= 1
            if deadline is not None and time.monotonic() >= deadline:
                return
            cluster, body = next(order)
            status, _ = await cluster.heartbeat(body, check=False)
            if status == 200:
                accepted += 1
            else:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted, failed, time.monotonic() - started


def conversion_ms(bodies: list[bytes], *, remembered: bool, rounds: int = 3) -> float:
    """CPU ms per heartbeat of the worker's conversion alone, in this process, best of rounds.

    ``remembered``: each member's series were seen in the heartbeat before (the usual case);
    otherwise the worker's memory is emptied before each heartbeat (first sight of a cluster).
    """
    submissions = [Submission(f"c{i}", parse_heartbeat(b), 0) for i, b in enumerate(bodies)]
    for submission in submissions:
        build_batch([submission])
    best = float("inf")
    for _ in range(rounds):
        spent = 0.0
        for submission in submissions:
            if not remembered:
                conversion.forget()
            started = time.process_time()
            build_batch([submission])
            spent += time.process_time() - started
        best = min(best, spent)
    return 1000 * best / len(submissions)


def crafted_ms(chars: int) -> tuple[float, float]:
    """CPU ms to convert ``chars`` of crafted text (blanks after a name), and of LXD text.

    The old regular expression took 21 s on 70 KiB of such text; linear reading costs about
    what the same amount of real metrics costs.
    """
    line = "lxd_a" + " \t" * 30_000 + "\n"
    crafted = line * (chars // len(line))
    member = StatusGenerator("crafted", metrics_bytes=chars, members=1).next()
    real = member["server_metrics"][0]["metrics"]
    out = []
    for text in (crafted, real):
        member["server_metrics"][0]["metrics"] = text
        heartbeat = parse_heartbeat(json.dumps(member).encode())
        conversion.forget()
        started = time.process_time()
        build_batch([Submission("crafted", heartbeat, 0)])
        out.append(1000 * (time.process_time() - started))
    return out[0], out[1]


async def run(args: argparse.Namespace, directory: Path, dsn: str) -> str:
    """Both runs; return the table."""
    await db.migrate(dsn)
    receiver = Receiver()
    await receiver.start()
    port = free_port()
    names = [f"bench-{i + 1:03d}" for i in range(args.clusters)]
    bodies: dict[str, list[bytes]] = {}
    for name in names:
        generator = StatusGenerator(
            name, metrics_bytes=METRICS_BYTES, members=MEMBERS, with_instances=True
        )
        bodies[name] = [generator.next_body() for _ in range(2)]
    body_kib = sum(len(b) for bs in bodies.values() for b in bs) / sum(map(len, bodies.values()))
    results: dict[str, dict[str, float]] = {}
    clusters: list[SimulatedCluster] = []
    try:
        for mode in ("off", "on"):
            server = Server(directory, dsn, port, [receiver.url] if mode == "on" else [])
            server.start()
            try:
                if not clusters:
                    clusters = await enrol(dsn, server.config, names)
                await send(clusters, bodies, count=len(clusters), seconds=None, concurrency=2)
                if mode == "on":
                    await server.drained()
                before = tree_cpu_seconds(server.pid)
                worker_before = await server.metric("mcm_forward_conversion_cpu_seconds_total")
                ok, bad, _ = await send(
                    clusters, bodies, count=args.heartbeats, seconds=None, concurrency=2
                )
                if mode == "on":
                    await server.drained()
                cpu = tree_cpu_seconds(server.pid) - before
                worker = (
                    await server.metric("mcm_forward_conversion_cpu_seconds_total") - worker_before
                )
                dropped_before = await server.metric("mcm_forward_dropped_heartbeats_total")
                sustained, failed, elapsed = await send(
                    clusters,
                    bodies,
                    count=None,
                    seconds=args.seconds,
                    concurrency=args.concurrency,
                )
                drain_started = time.monotonic()
                if mode == "on":
                    await server.drained()
                results[mode] = {
                    "ok": ok,
                    "bad": bad + failed,
                    "cpu_ms": 1000 * cpu / max(ok, 1),
                    "worker_ms": 1000 * worker / max(ok, 1),
                    "rate": sustained / elapsed,
                    "dropped": await server.metric("mcm_forward_dropped_heartbeats_total")
                    - dropped_before,
                    "drain": time.monotonic() - drain_started,
                }
            finally:
                server.stop()
    finally:
        await receiver.stop()
    off, on = results["off"], results["on"]
    sample = bodies[names[0]][0]
    series_per_heartbeat = build_batch([Submission("x", parse_heartbeat(sample), 0)]).series
    metrics_mb = sum(len(m.metrics) for m in parse_heartbeat(sample).server_metrics or ()) / 1e6
    all_bodies = [body for name in names for body in bodies[name]]
    warm = conversion_ms(all_bodies, remembered=True)
    cold = conversion_ms(all_bodies, remembered=False)
    crafted, real = crafted_ms(1024 * 1024)
    rows = [
        ("server CPU per heartbeat (ms)", f"{off['cpu_ms']:.1f}", f"{on['cpu_ms']:.1f}",
         f"{on['cpu_ms'] / off['cpu_ms']:.2f}x"),
        ("  of which forwarding worker (ms)", "-", f"{on['worker_ms']:.1f}", ""),
        ("sustained heartbeats/s accepted", f"{off['rate']:.1f}", f"{on['rate']:.1f}",
         f"{on['rate'] / off['rate']:.2f}x"),
        ("forwarding capacity, one worker (heartbeats/s)", "-",
         f"{1000 / max(on['worker_ms'], 0.001):.1f}", ""),
        ("forwarding capacity, one worker (MB/s of metrics text)", "-",
         f"{metrics_mb * 1000 / max(on['worker_ms'], 0.001):.1f}", ""),
        ("conversion alone, series seen before (ms/heartbeat)", "-", f"{warm:.1f}", ""),
        ("  capacity (heartbeats/s | MB/s of metrics text)", "-",
         f"{1000 / warm:.0f} | {metrics_mb * 1000 / warm:.0f}", ""),
        ("conversion alone, first sight of a cluster (ms/heartbeat)", "-", f"{cold:.1f}",
         f"{cold / warm:.1f}x"),
        ("  capacity (heartbeats/s | MB/s of metrics text)", "-",
         f"{1000 / cold:.0f} | {metrics_mb * 1000 / cold:.0f}", ""),
        ("1 MiB of crafted blanks vs 1 MiB of LXD metrics (ms)", f"{real:.0f}", f"{crafted:.0f}",
         f"{crafted / real:.2f}x"),
        ("heartbeats dropped by forwarding (sustained run)", "-", f"{on['dropped']:.0f}", ""),
        ("seconds to drain the forward queue after it", "-", f"{on['drain']:.1f}", ""),
        ("heartbeats refused or failed", f"{off['bad']:.0f}", f"{on['bad']:.0f}", ""),
    ]  # fmt: skip
    header = (
        f"Forwarding benchmark: {args.clusters} clusters x {MEMBERS} members, "
        f"~{METRICS_BYTES // 1024} KiB LXD metrics per member "
        f"(heartbeat body ~{body_kib / 1024:.0f} KiB, "
        f"~{series_per_heartbeat} series forwarded per heartbeat); CPU over "
        f"{args.heartbeats} heartbeats, sustained rate over {args.seconds:.0f} s with "
        f"{args.concurrency} concurrent senders (load generator on the same machine). "
        "Conversion alone: the worker's CPU in this process on the same heartbeats. Last row: "
        "LXD metrics in the first column, crafted text in the second."
    )
    width = max(len(r[0]) for r in rows)
    lines = [
        header,
        "",
        f"| {'measure':<{width}} | forwarding off | forwarding on | on/off |",
        f"|{'-' * (width + 2)}|----------------|---------------|--------|",
    ]
    lines += [f"| {a:<{width}} | {b:>14} | {c:>13} | {d:>6} |" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write the table."""
    parser = argparse.ArgumentParser(
        prog="python -m cluster_manager.bench forwarding",
        description=(__doc__ or "").splitlines()[0],
    )
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument("--heartbeats", type=int, default=48, help="for the CPU measurement")
    parser.add_argument("--seconds", type=float, default=20.0, help="of the sustained run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--output", type=Path, default=Path("forwarding-bench.txt"))
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="mcm-forwarding-bench-"))
    os.chmod(directory, 0o711)  # noqa: S103 - as root, PostgreSQL runs as another user and must get in
    postgres = EmbeddedPostgres(directory / "postgres")
    try:
        table = asyncio.run(run(args, directory, postgres.start()))
    finally:
        postgres.stop()
    print(table)
    with contextlib.suppress(OSError):
        args.output.write_text(table)
        print(f"written to {args.output}")
