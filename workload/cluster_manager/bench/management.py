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

from cluster_manager import db, dev_idp, seed
from cluster_manager.certificates import ensure_self_signed_files
from cluster_manager.embedded_postgres import EmbeddedPostgres
from cluster_manager.settings import render_config

HOST = "127.0.0.1"
CLIENT_ID = "cluster-manager-bench"
USER = "bench-admin"
PASSWORD = secrets.token_urlsafe(16)  # a throw-away login of a throw-away provider
FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')

ENDPOINTS = (
    ("baseline: GET /health/live", "/health/live"),
    ("GET /1.0/configuration (session)", "/1.0/configuration"),
    ("GET /1.0/overview", "/1.0/overview"),
    ("GET /1.0/remote-cluster (page 1, 100, by name)", "/1.0/remote-cluster?limit=100"),
    (
        "GET /1.0/remote-cluster (offset 5000, by memory desc)",
        "/1.0/remote-cluster?limit=100&offset=5000&sort=memory_usage_ratio&order=desc",
    ),
    (
        "GET /1.0/remote-cluster (health=warning, search, by health)",
        "/1.0/remote-cluster?limit=100&health=warning,stale&search=12&sort=health",
    ),
    ("GET /1.0/remote-cluster (500 per page)", "/1.0/remote-cluster?limit=500"),
    (
        "GET /1.0/remote-cluster (member_status=Offline, memory 0.5-0.9, by health)",
        "/1.0/remote-cluster?limit=100&member_status=Offline&memory_min=0.5&memory_max=0.9"
        "&sort=health",
    ),
    ("GET /1.0/overview (health=error)", "/1.0/overview?health=error"),
    ("GET /1.0/settings", "/1.0/settings"),
)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


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


def table(results: list[tuple[str, list[float]]]) -> str:
    """Rows of p50/p99/max in milliseconds and ratios against the first row (the baseline)."""
    base50, base99 = percentile(results[0][1], 0.5), percentile(results[0][1], 0.99)
    width = max(len(name) for name, _ in results)
    lines = [
        f"{'request':<{width}}  {'n':>5}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}"
        f"  {'p50/base':>8}  {'p99/base':>8}"
    ]
    for name, times in results:
        p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
        lines.append(
            f"{name:<{width}}  {len(times):>5}  {p50 * 1000:>8.2f}  {p99 * 1000:>8.2f}"
            f"  {max(times) * 1000:>8.2f}  {p50 / base50:>8.1f}  {p99 / base99:>8.1f}"
        )
    return "\n".join(lines)


async def seed_fleet(dsn: str, clusters: int) -> float:
    """Migrate and enrol the fleet; return the seconds it took."""
    started = time.perf_counter()
    await db.migrate(dsn)
    pool = await db.create_pool(dsn, max_size=2)
    try:
        await seed.insert_fleet(pool, clusters)
    finally:
        await pool.close()
    return time.perf_counter() - started


async def measure(base: str, ca_file: Path, count: int, warm_up: int) -> str:
    """Sign in, then time every endpoint."""
    context = ssl.create_default_context(cafile=str(ca_file))
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(ssl=context, limit=1)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
        await sign_in(session, base)
        results = [
            (name, await time_requests(session, base + path, count, warm_up))
            for name, path in ENDPOINTS
        ]
    return table(results)


def write_session_key(path: Path) -> None:
    """A fresh session key, hex as the charm writes it.

    Raw random bytes may start or end with whitespace, which ``load_key`` strips: the bench then
    failed to start now and then (issue 19).
    """
    path.write_text(os.urandom(32).hex())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(prog="python -m cluster_manager.bench management")
    parser.add_argument("--clusters", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500, help="timed requests per endpoint")
    parser.add_argument("--warm-up", type=int, default=20)
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="mcm-mgmt-bench-"))
    os.chmod(directory, 0o711)  # noqa: S103 - the postgres user must reach its data folder
    postgres = EmbeddedPostgres(directory / "pg")
    idp = server = None
    try:
        dsn = postgres.start()
        seconds = asyncio.run(seed_fleet(dsn, args.clusters))
        print(f"enrolled {args.clusters} clusters with heartbeat details in {seconds:.1f} s")
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
        report = asyncio.run(
            measure(base, directory / "management.crt", args.requests, args.warm_up)
        )
        print(f"{args.requests} sequential requests per row, one keep-alive TLS connection,")
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"server in its own process, {args.clusters} clusters, {os.cpu_count()} CPUs,")
        print(f"machine load average after the run: {load} (others' work counts too)\n")
        print(report)
    finally:
        if server is not None:
            server.terminate()
            server.wait(15)
        if idp is not None:
            idp.stop()
        postgres.stop()
    return 0
