"""Management API benchmark with a large fleet: ``python -m cluster_manager.bench management``.

Starts an embedded PostgreSQL, enrols ``--clusters`` clusters that all have heartbeat details,
runs ``cluster-manager serve`` in its own process and the development OpenID provider, signs
in through the provider's real login form, then times requests one after another over one
keep-alive HTTPS connection. The baseline is ``GET /health/live`` on the same server and TLS
stack, measured in the same run; ratios are against it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from cluster_manager import db, dev_idp, overview, seed
from cluster_manager.bench.servers import free_port, rss_bytes
from cluster_manager.certificates import ensure_self_signed_files
from cluster_manager.embedded_postgres import EmbeddedPostgres
from cluster_manager.fleet_settings import stale_after_seconds
from cluster_manager.settings import Settings, render_config

HOST = "127.0.0.1"
CLIENT_ID = "cluster-manager-bench"
USER = "bench-admin"
PASSWORD = secrets.token_urlsafe(16)  # a throw-away login of a throw-away provider
FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')

# ``{last}`` is the offset of the last 100-row page of the fleet being measured, ``{middle}``
# that of the page in the middle.
LIST = "/1.0/remote-cluster?limit=100"
ENDPOINTS = (
    ("baseline: GET /health/live", "/health/live"),
    ("GET /1.0/configuration (session)", "/1.0/configuration"),
    ("GET /1.0/overview", "/1.0/overview"),
    ("GET /1.0/overview (health=error)", "/1.0/overview?health=error"),
    ("GET /1.0/overview (health=stale,warning)", "/1.0/overview?health=stale,warning"),
    ("list: page 1, 100, by name", "/1.0/remote-cluster?limit=100"),
    ("list: last page, by name", "/1.0/remote-cluster?limit=100&offset={last}"),
    (
        "list: offset 5000, by memory desc",
        "/1.0/remote-cluster?limit=100&offset=5000&sort=memory_usage_ratio&order=desc",
    ),
    ("list: page 1, by health", "/1.0/remote-cluster?limit=100&sort=health"),
    ("list: health=error, by name", "/1.0/remote-cluster?limit=100&health=error"),
    (
        "list: health=warning,stale, search, by health",
        "/1.0/remote-cluster?limit=100&health=warning,stale&search=12&sort=health",
    ),
    ("list: search prefix cluster-a00042", "/1.0/remote-cluster?limit=100&search=cluster-a00042"),
    ("list: search substring 777", "/1.0/remote-cluster?limit=100&search=777"),
    ("list: 500 per page", "/1.0/remote-cluster?limit=500"),
    (
        "list: member_status=Offline, memory 0.5-0.9, by health",
        "/1.0/remote-cluster?limit=100&member_status=Offline&memory_min=0.5&memory_max=0.9"
        "&sort=health",
    ),
    ("list: page 1, by storage desc", LIST + "&sort=storage_max_usage_ratio&order=desc"),
    ("list: page 1, by load desc", LIST + "&sort=cpu_load_1&order=desc"),
    ("list: page 1, by instance count desc", LIST + "&sort=instance_count&order=desc"),
    ("list: page 1, by member count", LIST + "&sort=member_count"),
    ("list: page 1, by last seen desc", LIST + "&sort=last_status_update_at&order=desc"),
    ("list: page 1, by join time desc", LIST + "&sort=joined_at&order=desc"),
    ("list: page 1, by health desc", LIST + "&sort=health&order=desc"),
    ("list: middle page, by health", LIST + "&sort=health&offset={middle}"),
    ("list: last page, by health", LIST + "&sort=health&offset={last}"),
    ("list: middle page, by memory", LIST + "&sort=memory_usage_ratio&offset={middle}"),
    (
        "list: last page, by memory desc",
        LIST + "&sort=memory_usage_ratio&order=desc&offset={last}",
    ),
    ("list: last page, by last seen", LIST + "&sort=last_status_update_at&offset={last}"),
    ("list: last page, by instance count", LIST + "&sort=instance_count&offset={last}"),
    ("list: health=healthy, middle page, by name", LIST + "&health=healthy&offset={middle}"),
    (
        "list: instance_status=Error, storage >= 0.5, by load",
        LIST + "&instance_status=Error&storage_min=0.5&sort=cpu_load_1",
    ),
    ("list: search 12, by memory desc", LIST + "&search=12&sort=memory_usage_ratio&order=desc"),
    ("GET /1.0/settings", "/1.0/settings"),
)
SIZES = (10_000, 50_000, 100_000)


def start_identity_provider(directory: Path, management_url: str) -> dev_idp.IdpProcess:
    """The development OpenID provider with one admin user and this benchmark's client."""
    source = dev_idp.ensure_installed(dev_idp.source_dir())
    config = {
        "host": HOST,
        "port": 0,
        "users": {USER: {"password": PASSWORD, "name": "Bench Admin", "groups": ["admins"]}},
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": secrets.token_urlsafe(32),
                "redirect_uris": [management_url + "/oidc/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }
        ],
    }
    process = dev_idp.IdpProcess(source, config, directory / "idp.json")
    process.start()
    return process


def start_server(directory: Path, settings: dict[str, object]) -> subprocess.Popen[bytes]:
    """``cluster-manager serve`` in its own process; returns once the database is ready."""
    config = directory / "server.toml"
    config.write_text(render_config(settings))
    log = open(directory / "server.log", "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(  # noqa: S603 - fixed arguments
        [sys.executable, "-m", "cluster_manager.cli", "--config", str(config), "serve"],
        stdout=log,
        stderr=log,
    )
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((directory / "server.log").read_text()[-3000:])
        try:
            with socket.create_connection((HOST, int(str(settings["ops_port"]))), 1) as sock:
                sock.sendall(b"GET /health/ready HTTP/1.0\r\n\r\n")
                if b" 200 " in sock.recv(100):
                    return process
        except OSError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise TimeoutError("server did not become ready")


async def sign_in(session: aiohttp.ClientSession, base: str) -> None:
    """The browser's part of the code flow: /oidc/login, the provider's form, the callback."""
    async with session.get(base + "/oidc/login") as response:
        page = await response.text()
        form_url = str(response.url)
    match = FORM_ACTION.search(page)
    if match is None:
        raise RuntimeError(f"no sign-in form at {form_url}")
    action = urljoin(form_url, unescape(match.group(1)))
    async with session.post(action, data={"username": USER, "password": PASSWORD}) as response:
        await response.read()
    async with session.get(base + "/1.0/configuration") as response:
        user = (await response.json())["metadata"]["user"]
    if not user or not user["is_admin"]:
        raise RuntimeError("sign-in did not give an administrator session")


async def time_requests(
    session: aiohttp.ClientSession, url: str, count: int, warm_up: int
) -> list[float]:
    """Seconds each of ``count`` sequential GETs took (after ``warm_up`` untimed ones)."""
    times = []
    for index in range(warm_up + count):
        started = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}: {response.status} {await response.text()}")
        if index >= warm_up:
            times.append(time.perf_counter() - started)
    return times


def percentile(times: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


Results = dict[str, list[float]]


def size(clusters: int) -> str:
    """10000 -> 10k."""
    return f"{clusters // 1000}k" if clusters % 1000 == 0 else str(clusters)


def ms(times: Sequence[float], fraction: float) -> float:
    """A percentile in milliseconds."""
    return percentile(times, fraction) * 1000


def growth_table(sizes: Sequence[int], runs: Sequence[Results], rss: Sequence[int]) -> str:
    """p50/p99 in ms of every request at each fleet size; last column p99 largest / smallest."""
    names = list(runs[0])
    width = max(len(name) for name in names)
    head = "".join(f"  {f'p50 {size(n)}':>8}  {f'p99 {size(n)}':>8}" for n in sizes)
    ratio = f"p99 {size(sizes[-1])}/{size(sizes[0])}"
    lines = [f"{'request':<{width}}{head}  {ratio:>11}"]
    for name in names:
        cells = "".join(
            f"  {ms(run[name], 0.5):>8.1f}  {ms(run[name], 0.99):>8.1f}" for run in runs
        )
        growth = percentile(runs[-1][name], 0.99) / percentile(runs[0][name], 0.99)
        lines.append(f"{name:<{width}}{cells}  {growth:>11.2f}")
    memory = "".join(f"  {'':>8}  {r / 2**20:>8.0f}" for r in rss)
    lines.append(f"{'server RSS MiB (after the row above)':<{width}}{memory}")
    return "\n".join(lines)


async def add_clusters(dsn: str, clusters: int, prefix: str) -> float:
    """Migrate and enrol ``clusters`` more clusters; return the seconds it took."""
    started = time.perf_counter()
    await db.migrate(dsn)
    pool = await db.create_pool(dsn, max_size=2)
    try:
        await seed.insert_fleet(pool, clusters, prefix)
        # The overview's summary for the grown fleet, as a unit would have computed it while
        # the clusters joined one by one (else the first request waits for it, on a busy
        # machine longer than the database timeout).
        stale_after = await stale_after_seconds(pool, Settings(database_dsn=dsn))
        await pool.execute(overview.REFRESH_SUMMARY, stale_after, *overview.NO_FILTER, timeout=600)
    finally:
        await pool.close()
    return time.perf_counter() - started


def selected(rows: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The endpoints whose row name contains one of ``rows`` (all if none), baseline first."""
    return tuple(
        (name, path)
        for index, (name, path) in enumerate(ENDPOINTS)
        if index == 0 or not rows or any(row in name for row in rows)
    )


async def measure(
    session: aiohttp.ClientSession,
    base: str,
    fleet: int,
    args: argparse.Namespace,
) -> Results:
    """Time the selected endpoints against a fleet of ``fleet`` clusters."""
    last, middle = max(fleet - 100, 0), fleet // 2
    return {
        name: await time_requests(
            session, base + path.format(last=last, middle=middle), args.requests, args.warm_up
        )
        for name, path in selected(args.rows)
    }


async def measure_sizes(
    dsn: str,
    base: str,
    ca_file: Path,
    sizes: Sequence[int],
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
) -> tuple[list[Results], list[int]]:
    """Grow the fleet to each size in turn and time every endpoint at each."""
    context = ssl.create_default_context(cafile=str(ca_file))
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(ssl=context, limit=1)
    runs, rss = [], []
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
        await sign_in(session, base)
        enrolled = 0
        for index, size in enumerate(sizes):
            if size > enrolled:
                # Batches in name order: "cluster-" < "cluster-a..." keeps one naming scheme.
                seconds = await add_clusters(dsn, size - enrolled, f"cluster-{'abcdefgh'[index]}")
                print(f"enrolled {size - enrolled} more clusters in {seconds:.1f} s", flush=True)
                enrolled = size
            started = time.perf_counter()
            runs.append(await measure(session, base, size, args))
            rss.append(rss_bytes(server.pid))
            took = time.perf_counter() - started
            print(f"measured {size} clusters in {took:.0f} s", flush=True)
    return runs, rss


def write_session_key(path: Path) -> None:
    """A fresh session key, hex as the charm writes it.

    Raw random bytes may start or end with whitespace, which ``load_key`` strips: the bench then
    failed to start now and then (issue 19).
    """
    path.write_text(os.urandom(32).hex())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark at each fleet size and print the growth table."""
    parser = argparse.ArgumentParser(prog="python -m cluster_manager.bench management")
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        default=list(SIZES),
        help="comma-separated fleet sizes, growing (default 10000,50000,100000)",
    )
    parser.add_argument("--requests", type=int, default=100, help="timed requests per row")
    parser.add_argument("--warm-up", type=int, default=5)
    parser.add_argument(
        "--rows",
        type=lambda text: [row for row in text.split(",") if row],
        default=[],
        help="comma-separated parts of row names: only those rows (and the baseline) are timed",
    )
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes)
    directory = Path(tempfile.mkdtemp(prefix="mcm-mgmt-bench-"))
    os.chmod(directory, 0o711)  # noqa: S103 - the postgres user must reach its data folder
    postgres = EmbeddedPostgres(directory / "pg")
    idp = server = None
    try:
        dsn = postgres.start()
        asyncio.run(db.migrate(dsn))
        for name in ("management", "connector"):
            ensure_self_signed_files(
                directory / f"{name}.crt", directory / f"{name}.key", name, [HOST]
            )
        write_session_key(directory / "session.key")
        port = free_port()
        base = f"https://{HOST}:{port}"
        idp = start_identity_provider(directory, base)
        settings: dict[str, object] = {
            "database_dsn": dsn,
            "log_level": "WARNING",
            "workers": 1,  # the single-process figures the README quotes
            "management_host": HOST,
            "management_port": port,
            "management_cert_file": str(directory / "management.crt"),
            "management_key_file": str(directory / "management.key"),
            "management_url": base,
            "connector_host": HOST,
            "connector_port": free_port(),
            "connector_cert_file": str(directory / "connector.crt"),
            "connector_key_file": str(directory / "connector.key"),
            "ops_host": HOST,
            "ops_port": free_port(),
            "oidc_issuer": idp.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": idp.config["clients"][0]["client_secret"],
            "session_key_file": str(directory / "session.key"),
        }
        server = start_server(directory, settings)
        runs, rss = asyncio.run(
            measure_sizes(dsn, base, directory / "management.crt", sizes, args, server)
        )
        print(f"\n{args.requests} sequential requests per row and size (after {args.warm_up}")
        print("untimed), one keep-alive TLS connection, server in its own process,")
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"{os.cpu_count()} CPUs; machine load average after the run: {load}")
        print("(others' work counts too). Overview figures are at most a few seconds old.\n")
        print(growth_table(sizes, runs, rss))
    finally:
        if server is not None:
            server.terminate()
            server.wait(15)
        if idp is not None:
            idp.stop()
        postgres.stop()
    return 0
