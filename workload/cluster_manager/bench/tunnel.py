"""Reverse tunnel benchmark: ``python -m cluster_manager.bench tunnel [--tunnels 1000]``.

1. start ``cluster-manager serve`` on an embedded PostgreSQL (the unit-to-unit channel on);
2. enrol ``--tunnels`` simulated clusters, read the server's RSS, open one tunnel per cluster
   (the daemon's side, :mod:`cluster_manager.fleet.tunnel`), let them idle, read the RSS again:
   the difference per tunnel is the idle memory a tunnel costs the unit;
3. send ``--requests`` LXD requests (``GET /1.0/instances/<name>``) to random clusters from
   this process acting as another unit: over the signed unit-to-unit channel to the server,
   through the tunnel to the simulated cluster and back (what a management request arriving on
   the other unit costs), one at a time and then ``--concurrency`` at a time;
4. baseline in the same run: the same requests as direct HTTPS requests to a simulated
   cluster's LXD served over TLS (the path a manager would take if clusters were reachable),
   with a new TLS connection per request and with keep-alive;
5. print the table (and write it to ``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from cluster_manager.bench.servers import HOST, RealServer, free_port
from cluster_manager.certificates import ensure_self_signed_files
from cluster_manager.db import create_pool
from cluster_manager.fleet import Fleet
from cluster_manager.fleet.lxd import InMemoryLXD
from cluster_manager.fleet.tunnel import SimulatedTunnel
from cluster_manager.settings import load_settings
from cluster_manager.tunnel import Tunnels

logger = logging.getLogger("cluster_manager.bench.tunnel")


def percentile_ms(samples: Sequence[float], fraction: float) -> float:
    """A percentile of seconds, in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m cluster_manager.bench tunnel",
        description=(__doc__ or "").splitlines()[0],
    )
    parser.add_argument("--tunnels", type=int, default=1000, help="open tunnels on the unit")
    parser.add_argument("--requests", type=int, default=1000, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before the RSS")
    parser.add_argument("--output", default="bench-tunnel.md", help="where to write the table")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    return parser.parse_args(argv)


class Latencies:
    """Round-trip times of one kind of request."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.samples: list[float] = []
        self.errors = 0
        self.wall = 0.0

    def percentile(self, fraction: float) -> float:
        """A percentile in milliseconds."""
        return percentile_ms(self.samples, fraction)

    def row(self, baseline: Latencies | None) -> str:
        """The table row (ratios against the baseline row)."""
        p50, p99 = self.percentile(0.5), self.percentile(0.99)
        rate = len(self.samples) / self.wall if self.wall else 0.0
        if baseline is None or baseline is self:
            ratio = "1.00x (baseline)"
        else:
            base50, base99 = baseline.percentile(0.5), baseline.percentile(0.99)
            ratio = f"{p50 / base50:.2f}x p50, {p99 / base99:.2f}x p99"
        return (
            f"| {self.name} | {len(self.samples)} | {self.errors} | {p50:.2f} | {p99:.2f} |"
            f" {statistics.fmean(self.samples) * 1000:.2f} | {rate:.0f} | {ratio} |"
        )


async def measure(
    name: str, count: int, concurrency: int, call: Callable[[int], Awaitable[int]]
) -> Latencies:
    """Run ``call(i)`` ``count`` times, ``concurrency`` at a time; time each."""
    result = Latencies(name)
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with limit:
            started = time.perf_counter()
            try:
                status = await call(index)
            except Exception:  # a failed request is counted, not fatal
                result.errors += 1
                return
            if status == 200:
                result.samples.append(time.perf_counter() - started)
            else:
                result.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    result.wall = time.perf_counter() - started
    return result


async def lxd_over_https(directory: Path, lxd: InMemoryLXD) -> tuple[web.AppRunner, int, str]:
    """A simulated cluster's LXD served directly over TLS (the baseline's server)."""
    cert, key = directory / "lxd.crt", directory / "lxd.key"
    ensure_self_signed_files(cert, key, "bench-lxd", [HOST])

    async def handle(request: web.Request) -> web.Response:
        status, body = lxd.handle(request.method, request.path_qs, await request.read())
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    port = free_port()
    await web.TCPSite(runner, HOST, port, ssl_context=context).start()
    return runner, port, str(cert)


async def run(args: argparse.Namespace, server: RealServer, tokens: list[str], directory: Path):
    """Open the tunnels, measure, return the report lines."""
    settings = load_settings(server.config)
    fleet = Fleet(len(tokens), prefix="tunnel", concurrency=32)
    joined = await fleet.enrol(tokens)
    logger.info("%s clusters joined", joined)
    await asyncio.sleep(1)
    rss_before = server.rss()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))
    tunnels = [
        SimulatedTunnel(c, InMemoryLXD.sample(c.name), session=session) for c in fleet.joined
    ]
    limit = asyncio.Semaphore(32)

    async def connect(tunnel: SimulatedTunnel) -> None:
        async with limit:
            await tunnel.connect()
        tunnel.start()

    started = time.perf_counter()
    await asyncio.gather(*(connect(t) for t in tunnels))
    open_seconds = time.perf_counter() - started
    pool = await create_pool(settings.database_dsn, max_size=4)
    recorded = await pool.fetchval("SELECT count(*) FROM remote_cluster_tunnels")
    await asyncio.sleep(args.idle)
    rss_after = server.rss()
    cpu_idle_start = server.cpu_seconds()
    await asyncio.sleep(args.idle)
    idle_cpu = (server.cpu_seconds() - cpu_idle_start) / args.idle

    other_unit = Tunnels(settings.replace(internal_address="bench:0"), pool)
    rng = random.Random(7)  # noqa: S311 - a benchmark's choice of clusters
    picks = [rng.randrange(len(tunnels)) for _ in range(args.requests)]

    async def through_tunnel(index: int) -> int:
        tunnel = tunnels[picks[index]]
        name = next(iter(tunnel.lxd.instances))
        status, _ = await other_unit.request(tunnel.cluster.name, "GET", f"/1.0/instances/{name}")
        return status

    lxd = tunnels[0].lxd
    runner, port, cafile = await lxd_over_https(directory, lxd)
    context = ssl.create_default_context(cafile=cafile)
    first = next(iter(lxd.instances))
    url = f"https://{HOST}:{port}/1.0/instances/{first}"
    fresh = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, ssl=context))
    kept = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=0))

    async def direct(http: aiohttp.ClientSession) -> int:
        async with http.get(url) as response:
            await response.read()
            return response.status

    rows: list[tuple[int, Latencies, Latencies]] = []
    try:
        for concurrency in (1, args.concurrency):
            new_conn = await measure(
                "direct HTTPS to the simulator, new connection each",
                args.requests,
                concurrency,
                lambda _i: direct(fresh),
            )
            keep = await measure(
                "direct HTTPS to the simulator, keep-alive",
                args.requests,
                concurrency,
                lambda _i: direct(kept),
            )
            tunnelled = await measure(
                "other unit -> unit channel -> tunnel -> cluster",
                args.requests,
                concurrency,
                through_tunnel,
            )
            rows += [(concurrency, row, new_conn) for row in (new_conn, keep, tunnelled)]
    finally:
        await other_unit.close()
        await fresh.close()
        await kept.close()
        await runner.cleanup()
        for tunnel in tunnels:
            await tunnel.close()
        await session.close()
        await pool.close()

    per_tunnel = (rss_after - rss_before) / max(1, len(tunnels))
    lines = [
        f"# Reverse tunnel benchmark ({len(tunnels)} open tunnels on one unit)",
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"aiohttp {aiohttp.__version__}.",
        "",
        "| open tunnels | rows in remote_cluster_tunnels | opened in | server RSS before |"
        " server RSS with tunnels | idle memory per tunnel | server CPU while idle |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {len(tunnels)} | {recorded} | {open_seconds:.1f} s | {rss_before / 2**20:.1f} MiB |"
        f" {rss_after / 2**20:.1f} MiB | {per_tunnel / 1024:.1f} KiB |"
        f" {idle_cpu * 100:.1f} % of a core |",
        "",
        "Round trips (`GET /1.0/instances/<name>`, ms; ratio against the direct request with"
        " a new connection, as the daemon makes to LXD, measured in the same run):",
        "",
        "| in flight | request | ok | errors | p50 ms | p99 ms | mean ms | req/s | vs baseline |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {in_flight} " + row.row(baseline) for in_flight, row, baseline in rows]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    directory = Path(tempfile.mkdtemp(prefix="mcm-bench-tunnel-"))
    os.chmod(directory, 0o755)  # noqa: S103 - the embedded PostgreSQL may run as another user
    key_file = directory / "internal.key"
    key_file.write_text(os.urandom(32).hex())
    server = RealServer(directory)
    server.extra = {
        "internal_host": HOST,
        "internal_port": free_port(),
        "internal_key_file": str(key_file),
        "tunnel_max_in_flight": 64,
    }
    try:
        server.start()
        tokens = server.create_tokens_quickly([f"tunnel-{i + 1:04d}" for i in range(args.tunnels)])
        lines = asyncio.run(run(args, server, tokens, directory))
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.output).write_text(text)
