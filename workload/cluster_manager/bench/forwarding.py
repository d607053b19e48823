"""Benchmark: what forwarding costs the server per heartbeat, and heartbeats/s with it on.

``python -m cluster_manager.bench forwarding [--clusters 8] [--rounds 8] [--per-round 16]``

Runs two ``cluster-manager serve`` child processes at once on one embedded PostgreSQL, one
forwarding off and one forwarding on (remote write to a receiver in this process that answers
204), with simulated 3-member clusters whose ``server_metrics`` carry about 200 KiB of LXD
metrics per member, sent over real mutual TLS the way MicroCloud does. The same clusters send
the same heartbeats to both, in alternating rounds (off then on, then on then off, ...), so a
machine busy with other work weighs on both sides alike. A round with forwarding on ends when
the receiver has every heartbeat of it. Server CPU is user + system time of the server process
and its children (the forwarding worker) from /proc, so the load generator's own CPU is not
counted. Prints a table and writes it to ``--output``.
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

import cramjam
import msgspec
from aiohttp import ClientSession, web
from prometheus_client.parser import text_string_to_metric_families

from cluster_manager import db, tokens
from cluster_manager.bench.servers import (
    HOST,
    TICKS,
    UNLIMITED,
    ServerProcess,
    connector_certificate,
    free_port,
    tree_cpu_seconds,
)
from cluster_manager.certificates import ensure_self_signed_files
from cluster_manager.embedded_postgres import EmbeddedPostgres
from cluster_manager.fleet import SimulatedCluster, StatusGenerator
from cluster_manager.forwarding import memory
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
        self.heartbeats = 0  # one mcm_cluster_cpu_count series each
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
            self.heartbeats += bytes(cramjam.snappy.decompress_raw(body)).count(
                b"mcm_cluster_cpu_count"
            )
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

    async def received(self, heartbeats: int, within: float = 300) -> None:
        """Wait until ``heartbeats`` heartbeats in all have arrived."""
        deadline = time.monotonic() + within
        while self.heartbeats < heartbeats:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.heartbeats} of {heartbeats} heartbeats forwarded")
            await asyncio.sleep(0.01)


class Server(ServerProcess):
    """``cluster-manager serve`` with rate limits out of the way, forwarding or not."""

    def __init__(self, directory: Path, dsn: str, mode: str, remote_write: list[str]) -> None:
        super().__init__(directory)
        self.name = f"cluster-manager-forwarding-{mode}"
        port = self.port
        self.ops_port = free_port()
        cert, key, _ = connector_certificate(directory)
        mcert, mkey = directory / "management.crt", directory / "management.key"
        ensure_self_signed_files(mcert, mkey, "bench-management", [HOST])
        (directory / "session.key").write_bytes(b"s" * 32)
        self.config = directory / f"forwarding-bench-{mode}.toml"
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
    for _ in range(2):  # the second reading remembers each member's layout
        for submission in submissions:
            build_batch([submission])
    best = float("inf")
    for _ in range(rounds):
        spent = 0.0
        for submission in submissions:
            if not remembered:
                memory.forget()
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
        memory.forget()
        started = time.process_time()
        build_batch([Submission("crafted", heartbeat, 0)])
        out.append(1000 * (time.process_time() - started))
    return out[0], out[1]


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of one process, without its children."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def load_average() -> str:
    """The 1-minute load average now."""
    return f"{os.getloadavg()[0]:.1f}"


def twins(clusters: list[SimulatedCluster], port: int) -> list[SimulatedCluster]:
    """The same clusters (certificates, tokens) sending to another server on ``port``."""
    out = []
    for cluster in clusters:
        assert cluster.token is not None
        twin = SimulatedCluster(cluster.name, identity=cluster.identity)
        twin.use_token(
            msgspec.structs.replace(cluster.token, addresses=(f"{HOST}:{port}",)).encode()
        )
        out.append(twin)
    return out


async def run(args: argparse.Namespace, directory: Path, dsn: str) -> str:
    """Both servers, rounds in turn, then the sustained runs; return the table."""
    await db.migrate(dsn)
    receiver = Receiver()
    await receiver.start()
    names = [f"bench-{i + 1:03d}" for i in range(args.clusters)]
    bodies: dict[str, list[bytes]] = {}
    for name in names:
        generator = StatusGenerator(
            name, metrics_bytes=METRICS_BYTES, members=MEMBERS, with_instances=True
        )
        bodies[name] = [generator.next_body() for _ in range(2)]
    body_kib = sum(len(b) for bs in bodies.values() for b in bs) / sum(map(len, bodies.values()))
    loads = [load_average()]
    servers = {
        "off": Server(directory, dsn, "off", []),
        "on": Server(directory, dsn, "on", [receiver.url]),
    }
    cpu = dict.fromkeys(servers, 0.0)
    sent = dict.fromkeys(servers, 0)
    refused = dict.fromkeys(servers, 0)
    results: dict[str, dict[str, float]] = {}
    try:
        for server in servers.values():
            server.start()
        senders = {"off": await enrol(dsn, servers["off"].config, names)}
        senders["on"] = twins(senders["off"], servers["on"].port)
        on_pid = servers["on"].pid
        # Every cluster's both heartbeats three times: each member's layout is known after that.
        warm = 3 * 2 * len(names)
        await send(senders["off"], bodies, count=warm, seconds=None, concurrency=2)
        expected, _, _ = await send(senders["on"], bodies, count=warm, seconds=None, concurrency=2)
        await receiver.received(expected)
        worker_before = tree_cpu_seconds(on_pid) - process_cpu_seconds(on_pid)
        for round_number in range(args.rounds):
            order = ("off", "on") if round_number % 2 == 0 else ("on", "off")
            for mode in order:
                before = tree_cpu_seconds(servers[mode].pid)
                ok, bad, _ = await send(
                    senders[mode], bodies, count=args.per_round, seconds=None, concurrency=2
                )
                if mode == "on":
                    expected += ok
                    await receiver.received(expected)
                cpu[mode] += tree_cpu_seconds(servers[mode].pid) - before
                sent[mode] += ok
                refused[mode] += bad
        worker = tree_cpu_seconds(on_pid) - process_cpu_seconds(on_pid) - worker_before
        loads.append(load_average())
        for mode, server in servers.items():
            dropped_before = await server.metric("mcm_forward_dropped_heartbeats_total")
            sustained, failed, elapsed = await send(
                senders[mode],
                bodies,
                count=None,
                seconds=args.seconds,
                concurrency=args.concurrency,
            )
            drain_started = time.monotonic()
            await server.drained()
            results[mode] = {
                "rate": sustained / elapsed,
                "dropped": await server.metric("mcm_forward_dropped_heartbeats_total")
                - dropped_before,
                "drain": time.monotonic() - drain_started,
                "bad": refused[mode] + failed,
            }
        loads.append(load_average())
    finally:
        for server in servers.values():
            server.stop()
        await receiver.stop()
    off, on = results["off"], results["on"]
    off_ms = 1000 * cpu["off"] / max(sent["off"], 1)
    on_ms = 1000 * cpu["on"] / max(sent["on"], 1)
    worker_ms = 1000 * worker / max(sent["on"], 1)
    sample = bodies[names[0]][0]
    series_per_heartbeat = build_batch([Submission("x", parse_heartbeat(sample), 0)]).series
    metrics_mb = sum(len(m.metrics) for m in parse_heartbeat(sample).server_metrics or ()) / 1e6
    all_bodies = [body for name in names for body in bodies[name]]
    warm_ms = conversion_ms(all_bodies, remembered=True)
    cold_ms = conversion_ms(all_bodies, remembered=False)
    crafted, real = crafted_ms(1024 * 1024)
    rows = [
        ("server CPU per heartbeat (ms)", f"{off_ms:.2f}", f"{on_ms:.2f}",
         f"{on_ms / off_ms:.2f}x"),
        ("  of which the forwarding worker process (ms)", "-", f"{worker_ms:.2f}", ""),
        ("  of which forwarding in the server process (ms)", "-",
         f"{on_ms - worker_ms - off_ms:.2f}", ""),
        ("forwarding capacity, one worker (heartbeats/s)", "-",
         f"{1000 / max(worker_ms, 0.001):.0f}", ""),
        ("forwarding capacity, one worker (MB/s of metrics text)", "-",
         f"{metrics_mb * 1000 / max(worker_ms, 0.001):.0f}", ""),
        ("sustained heartbeats/s accepted", f"{off['rate']:.1f}", f"{on['rate']:.1f}",
         f"{on['rate'] / off['rate']:.2f}x"),
        ("conversion alone, series seen before (ms/heartbeat)", "-", f"{warm_ms:.2f}", ""),
        ("  capacity (heartbeats/s; MB/s of metrics text)", "-",
         f"{1000 / warm_ms:.0f}; {metrics_mb * 1000 / warm_ms:.0f}", ""),
        ("conversion alone, first sight of a cluster (ms/heartbeat)", "-", f"{cold_ms:.1f}",
         f"{cold_ms / warm_ms:.1f}x"),
        ("  capacity (heartbeats/s; MB/s of metrics text)", "-",
         f"{1000 / cold_ms:.0f}; {metrics_mb * 1000 / cold_ms:.0f}", ""),
        ("1 MiB of crafted blanks vs 1 MiB of LXD metrics (ms)", f"{real:.0f}", f"{crafted:.0f}",
         f"{crafted / real:.2f}x"),
        ("heartbeats dropped by forwarding (sustained run)", "-", f"{on['dropped']:.0f}", ""),
        ("seconds to drain the forward queue after it", "-", f"{on['drain']:.1f}", ""),
        ("heartbeats refused or failed", f"{off['bad']:.0f}", f"{on['bad']:.0f}", ""),
    ]  # fmt: skip
    header = (
        f"Forwarding benchmark: {args.clusters} clusters x {MEMBERS} members, "
        f"~{METRICS_BYTES // 1024} KiB LXD metrics per member "
        f"(heartbeat body ~{body_kib / 1024:.0f} KiB, ~{metrics_mb:.2f} MB of metrics text, "
        f"~{series_per_heartbeat} series forwarded per heartbeat). CPU over {sent['off']} "
        f"heartbeats to each server in {args.rounds} alternating rounds, both servers running; "
        f"the worker's capacity is one core over its CPU per heartbeat. Sustained rate over "
        f"{args.seconds:.0f} s per server with {args.concurrency} concurrent senders (load "
        "generator on the same machine). Conversion alone: the worker's conversion in this "
        "process on the same heartbeats. Last row but three: LXD metrics in the first column, "
        f"crafted text in the second. Load average (1 min): {' -> '.join(loads)}."
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
    parser.add_argument("--rounds", type=int, default=8, help="of the CPU measurement")
    parser.add_argument("--per-round", type=int, default=16, help="heartbeats to each server")
    parser.add_argument("--seconds", type=float, default=10.0, help="of each sustained run")
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
