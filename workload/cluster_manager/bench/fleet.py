"""Fleet-wide instance search and bulk restart: ``python -m cluster_manager.bench fleet``.

1. start ``cluster-manager serve`` on an embedded PostgreSQL and the development OpenID
   provider, and sign in as an administrator through its real login form;
2. enrol ``--clusters`` simulated clusters and open one reverse tunnel each (the daemon's
   side, :mod:`cluster_manager.fleet.tunnel`), each answering from an in-memory LXD with
   ``--instances`` instances;
3. time ``--searches`` full fleet searches (``GET /1.0/instances?status=Running``, paged by
   ``--page`` clusters, following ``next_after``) and ``--bulk-runs`` bulk restarts of one
   instance per cluster (``POST /1.0/instances/bulk/state``, every change audited), sampling
   the server's RSS every 50 ms for the peak;
4. baseline in the same run: the same LXD calls straight to one simulated cluster's LXD over
   HTTPS (``GET /1.0/instances?recursion=2`` once per cluster; ``PUT .../state`` and
   ``GET /1.0/operations/<id>/wait`` once per instance), as many at a time as the manager
   asks clusters (``fleet_fanout_concurrency``), with a new TLS connection per call (as a
   manager reaching each cluster directly would) and with keep-alive;
5. print the tables (and write them to ``--output``), with the machine's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import aiohttp

from cluster_manager.bench import management
from cluster_manager.bench.servers import HOST, RealServer, free_port
from cluster_manager.bench.tunnel import lxd_over_https, percentile_ms
from cluster_manager.fleet import Fleet
from cluster_manager.fleet.lxd import InMemoryLXD
from cluster_manager.fleet.tunnel import SimulatedTunnel

logger = logging.getLogger("cluster_manager.bench.fleet")
FANOUT = 32  # fleet_fanout_concurrency, the default


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m cluster_manager.bench fleet",
        description=(__doc__ or "").splitlines()[0],
    )
    parser.add_argument("--clusters", type=int, default=1000, help="connected clusters")
    parser.add_argument("--instances", type=int, default=3, help="instances per cluster")
    parser.add_argument("--searches", type=int, default=20, help="timed full fleet searches")
    parser.add_argument("--page", type=int, default=500, help="clusters per search page")
    parser.add_argument("--bulk-runs", type=int, default=3, help="timed bulk restarts")
    parser.add_argument("--output", default="bench-fleet.md", help="where to write the tables")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    return parser.parse_args(argv)


class PeakMemory:
    """The server's RSS, sampled every 50 ms while a block runs."""

    def __init__(self, server: RealServer) -> None:
        self.server = server
        self.peak = 0

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Sample until the block ends."""
        self.peak = self.server.rss()

        async def sample() -> None:
            while True:
                self.peak = max(self.peak, self.server.rss())
                await asyncio.sleep(0.05)

        task = asyncio.create_task(sample())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.peak = max(self.peak, self.server.rss())


async def fan_out(count: int, call: Callable[[int], Awaitable[bool]]) -> tuple[float, int]:
    """``count`` calls, FANOUT at a time; the seconds it all took and how many failed."""
    limit = asyncio.Semaphore(FANOUT)
    failed = 0

    async def one(index: int) -> None:
        nonlocal failed
        async with limit:
            try:
                ok = await call(index)
            except (aiohttp.ClientError, OSError, TimeoutError):
                ok = False
            failed += not ok

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started, failed


async def full_search(http: aiohttp.ClientSession, base: str, page: int) -> tuple[int, int, int]:
    """One fleet search through every page: instances found, clusters asked, unanswered."""
    found = asked = unanswered = 0
    after: str | None = None
    while True:
        params = {"status": "Running", "clusters": str(page)}
        if after is not None:
            params["after"] = after
        async with http.get(base + "/1.0/instances", params=params) as response:
            if response.status != 200:
                raise RuntimeError(f"search answered {response.status}: {await response.text()}")
            metadata = (await response.json())["metadata"]
        found += len(metadata["instances"])
        asked += len(metadata["clusters_asked"])
        unanswered += len(metadata["unanswered"])
        after = metadata["next_after"]
        if after is None:
            return found, asked, unanswered


async def run(args: argparse.Namespace, server: RealServer, base: str, directory: Path):
    """Open the tunnels, sign in, measure; return the report lines."""
    names = [f"fleet-{i + 1:04d}" for i in range(args.clusters)]
    tokens = await asyncio.to_thread(server.create_tokens_quickly, names)
    fleet = Fleet(len(tokens), prefix="fleet", concurrency=32)
    joined = await fleet.enrol(tokens)
    logger.info("%s clusters joined", joined)
    rss_before = server.rss()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))
    tunnels = [
        SimulatedTunnel(c, InMemoryLXD.sample(c.name, args.instances), session=session)
        for c in fleet.joined
    ]
    limit = asyncio.Semaphore(32)

    async def connect(tunnel: SimulatedTunnel) -> None:
        async with limit:
            await tunnel.connect()
        tunnel.start()

    await asyncio.gather(*(connect(t) for t in tunnels))
    await asyncio.sleep(2)
    rss_tunnels = server.rss()
    context = ssl.create_default_context(cafile=str(directory / "management.crt"))
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=4),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        timeout=aiohttp.ClientTimeout(total=600),
    )
    lxd = InMemoryLXD.sample("direct", args.instances)
    runner, port, cafile = await lxd_over_https(directory, lxd)
    direct_context = ssl.create_default_context(cafile=cafile)
    fresh = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True, ssl=direct_context, limit=0)
    )
    kept = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=direct_context, limit=0))
    lxd_url = f"https://{HOST}:{port}"
    memory = PeakMemory(server)
    try:
        await management.sign_in(http, base)
        async with http.get(base + "/1.0/configuration") as response:
            http.headers["X-CSRF-Token"] = (await response.json())["metadata"]["csrf_token"]

        # Fleet search through the manager.
        searches: list[float] = []
        results: set[tuple[int, int, int]] = set()
        async with memory.watching():
            for _ in range(args.searches):
                started = time.perf_counter()
                results.add(await full_search(http, base, args.page))
                searches.append(time.perf_counter() - started)
        search_peak = memory.peak

        # Baseline: the same per-cluster call straight to one simulated LXD.
        async def list_direct(client: aiohttp.ClientSession) -> bool:
            async with client.get(lxd_url + "/1.0/instances?recursion=2") as response:
                await response.read()
                return response.status == 200

        base_fresh = [
            (await fan_out(len(tunnels), lambda _i: list_direct(fresh)))[0]
            for _ in range(args.searches)
        ]
        base_kept = [
            (await fan_out(len(tunnels), lambda _i: list_direct(kept)))[0]
            for _ in range(args.searches)
        ]

        # Bulk restart through the manager, one instance per cluster.
        items = [
            {"cluster": t.cluster.name, "instance": next(iter(t.lxd.instances))} for t in tunnels
        ]
        bulk: list[tuple[float, int, int]] = []
        async with memory.watching():
            for _ in range(args.bulk_runs):
                started = time.perf_counter()
                async with http.post(
                    base + "/1.0/instances/bulk/state",
                    json={"action": "restart", "instances": items},
                ) as response:
                    if response.status != 200:
                        raise RuntimeError(f"bulk answered {response.status}")
                    metadata = (await response.json())["metadata"]
                bulk.append(
                    (time.perf_counter() - started, metadata["succeeded"], metadata["failed"])
                )
        bulk_peak = memory.peak

        # Baseline: the same two calls per instance straight to one simulated LXD.
        direct_name = next(iter(lxd.instances))

        async def restart_direct(client: aiohttp.ClientSession) -> bool:
            async with client.put(
                lxd_url + f"/1.0/instances/{direct_name}/state",
                json={"action": "restart", "timeout": 30},
            ) as response:
                operation = (await response.json())["operation"]
            async with client.get(lxd_url + operation + "/wait?timeout=25") as response:
                await response.read()
                return response.status == 200

        bulk_fresh = [
            await fan_out(len(tunnels), lambda _i: restart_direct(fresh))
            for _ in range(args.bulk_runs)
        ]
        bulk_kept = [
            await fan_out(len(tunnels), lambda _i: restart_direct(kept))
            for _ in range(args.bulk_runs)
        ]
        restarted = sum(len(t.lxd.state_requests) for t in tunnels)
    finally:
        await http.close()
        await fresh.close()
        await kept.close()
        await runner.cleanup()
        for tunnel in tunnels:
            await tunnel.close()
        await session.close()

    mib = 2**20
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    found, asked, unanswered = sorted(results)[0]
    rows = [
        ("manager: full search, every page", searches),
        (f"baseline: {len(tunnels)} direct calls, new TLS connection each", base_fresh),
        (f"baseline: {len(tunnels)} direct calls, keep-alive", base_kept),
    ]
    reference = statistics.median(base_fresh)
    lines = [
        f"# Fleet benchmark ({len(tunnels)} connected clusters, {args.instances} instances each)",
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; load average after"
        f" the run: {load} (others' work counts too). Server in its own process, one worker;"
        f" fan-out {FANOUT} clusters at a time.",
        "",
        f"Search: `GET /1.0/instances?status=Running&clusters={args.page}` through every page;"
        f" each full search found {found} instances on {asked} clusters, {unanswered}"
        f" unanswered ({len(results)} distinct outcome(s) over {len(searches)} searches).",
        "",
        "| full fleet search | runs | p50 ms | p99 ms | p50 vs baseline |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, samples in rows:
        ratio = statistics.median(samples) / reference
        lines.append(
            f"| {name} | {len(samples)} | {percentile_ms(samples, 0.5):.0f} |"
            f" {percentile_ms(samples, 0.99):.0f} | {ratio:.2f}x |"
        )
    bulk_reference = statistics.median(seconds for seconds, _ in bulk_fresh)
    lines += [
        "",
        f"Bulk restart of {len(items)} instances (one per cluster), each waited for; every"
        " change written to the audit log before and after:",
        "",
        "| bulk restart | runs | total s (median) | succeeded | failed | vs baseline |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| manager: `POST /1.0/instances/bulk/state` | {len(bulk)} |"
        f" {statistics.median(b[0] for b in bulk):.2f} | {min(b[1] for b in bulk)} |"
        f" {max(b[2] for b in bulk)} |"
        f" {statistics.median(b[0] for b in bulk) / bulk_reference:.2f}x |",
        f"| baseline: PUT state + GET operation wait, direct, new TLS connection each |"
        f" {len(bulk_fresh)} | {bulk_reference:.2f} | {len(items) - max(f for _, f in bulk_fresh)}"
        f" | {max(f for _, f in bulk_fresh)} | 1.00x |",
        f"| baseline: the same, keep-alive | {len(bulk_kept)} |"
        f" {statistics.median(s for s, _ in bulk_kept):.2f} |"
        f" {len(items) - max(f for _, f in bulk_kept)} | {max(f for _, f in bulk_kept)} |"
        f" {statistics.median(s for s, _ in bulk_kept) / bulk_reference:.2f}x |",
        "",
        f"State changes that reached the simulated clusters: {restarted}"
        f" (expected {len(items) * len(bulk)}).",
        "",
        "| server RSS | MiB |",
        "| --- | --- |",
        f"| before the tunnels | {rss_before / mib:.1f} |",
        f"| {len(tunnels)} tunnels open, idle | {rss_tunnels / mib:.1f} |",
        f"| peak during the searches | {search_peak / mib:.1f} |",
        f"| peak during the bulk restarts | {bulk_peak / mib:.1f} |",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    directory = Path(tempfile.mkdtemp(prefix="mcm-bench-fleet-"))
    os.chmod(directory, 0o755)  # noqa: S103 - the embedded PostgreSQL may run as another user
    port = free_port()
    base = f"https://{HOST}:{port}"
    idp = management.start_identity_provider(directory, base)
    server = RealServer(directory)
    server.extra = {
        "management_port": port,
        "management_url": base,
        "oidc_issuer": idp.issuer,
        "oidc_client_id": management.CLIENT_ID,
        "oidc_client_secret": idp.config["clients"][0]["client_secret"],
        "tunnel_max_in_flight": 64,
    }
    try:
        server.start()
        lines = asyncio.run(run(args, server, base, directory))
    finally:
        server.stop()
        idp.stop()
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.output).write_text(text)
    return 0
