"""``cluster-manager demo``: the whole product on one machine, state kept in a folder.

The folder holds the embedded PostgreSQL, the servers' self-signed certificates (kept across
restarts, so tokens and enrolled clusters stay valid) and a ``config.toml`` that any other
``cluster-manager`` command given the same state folder uses while the demo runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shlex
import socket
from pathlib import Path

from cluster_manager import logs, tokens
from cluster_manager.certificates import ensure_self_signed_files
from cluster_manager.dev_idp import DemoIdentityProvider, IdpPortTakenError
from cluster_manager.embedded_postgres import EmbeddedPostgres
from cluster_manager.errors import Conflict
from cluster_manager.ports import unused_port
from cluster_manager.server import Servers, stop_on_signals
from cluster_manager.settings import Settings, load_settings, render_config

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {
    "management_port": 9000,
    "connector_port": 9001,
    "ops_port": 9002,
    "internal_port": 9004,
}
# A port found free may be taken before our server binds it (two demos started at once): then
# every port is chosen again and the servers start again, this many times at most.
PORT_ATTEMPTS = 5


def _port_free(port: int) -> bool:
    """A first guess only: another program may bind the port before we do (see PORT_ATTEMPTS)."""
    with socket.socket() as sock:
        # As the servers bind: a port in TIME_WAIT after our own last run is free to use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - checking what the servers will bind
        except OSError:
            return False
    return True


def _hosts() -> list[str]:
    hosts = ["127.0.0.1", "localhost", "::1"]
    with contextlib.suppress(OSError):
        name = socket.gethostname()
        hosts.append(name)
        address = socket.gethostbyname(name)
        if not address.startswith("127."):
            hosts.insert(0, address)
    return list(dict.fromkeys(hosts))


def prepare(state: Path, dsn: str, extra: dict[str, object] | None = None) -> Settings:
    """Write the demo's certificates and config.toml (keeping earlier ports); return settings."""
    state.mkdir(parents=True, exist_ok=True)
    previous = load_settings(state / "config.toml") if (state / "config.toml").exists() else None
    ports = {}
    for key, default in DEFAULT_PORTS.items():
        port = getattr(previous, key) if previous else default
        ports[key] = port if _port_free(port) else unused_port()
    hosts = _hosts()
    tls = state / "tls"
    for server in ("management", "connector"):
        ensure_self_signed_files(
            tls / f"{server}.crt", tls / f"{server}.key", f"cluster-manager-{server}", hosts
        )
    session_key = state / "session.key"
    if not session_key.exists():
        fd = os.open(session_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(os.urandom(32).hex())  # as the charm writes it
    internal_key = state / "internal.key"  # the unit-to-unit channel's shared key (issue 12)
    if not internal_key.exists():
        fd = os.open(internal_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(os.urandom(32).hex())
    address_hosts = [h for h in hosts if h not in ("localhost", "::1")][:2]
    values = {
        "database_dsn": dsn,
        **ports,
        "management_cert_file": str(tls / "management.crt"),
        "management_key_file": str(tls / "management.key"),
        "management_url": f"https://127.0.0.1:{ports['management_port']}",
        "connector_cert_file": str(tls / "connector.crt"),
        "connector_key_file": str(tls / "connector.key"),
        "connector_addresses": [f"{h}:{ports['connector_port']}" for h in address_hosts],
        "session_key_file": str(session_key),
        "internal_host": "127.0.0.1",
        "internal_key_file": str(internal_key),
        **(extra or {}),
    }
    config = state / "config.toml"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# Written by `cluster-manager demo`; rewritten at every start.\n")
        handle.write(render_config(values))
    return load_settings(config)


async def _first_free_token(settings: Settings, servers: Servers) -> str:
    from cluster_manager.db import create_pool

    pool = await create_pool(settings.database_dsn, max_size=1)
    try:
        for number in range(1, 1000):
            name = f"microcloud-{number}"
            with contextlib.suppress(Conflict):
                token, _ = await tokens.create_token(pool, settings, name, "created by the demo")
                return token.encode()
    finally:
        await pool.close()
    raise RuntimeError("no free demo cluster name")


async def _start(state: Path, dsn: str) -> tuple[Servers, DemoIdentityProvider]:
    """Choose ports, write config.toml, start the identity provider and the servers.

    Binding is the test of a free port: when a bind fails because another program took the
    port since we looked, everything is stopped and started again on newly chosen ports.
    """
    for _attempt in range(PORT_ATTEMPTS):
        idp = DemoIdentityProvider(state)  # sign-in through a real, local OpenID provider
        settings = prepare(state, dsn, idp.settings())
        servers = Servers(settings)
        try:
            # The provider first: the Management API discovers it as it starts.
            await asyncio.to_thread(idp.start, settings.management_url)
            await servers.start()
        except (OSError, IdpPortTakenError) as error:
            await servers.stop()
            idp.stop()
            if isinstance(error, OSError) and error.errno != errno.EADDRINUSE:
                raise
            logger.info("a port was taken while the demo started; choosing ports again")
            continue
        except BaseException:
            await servers.stop()
            idp.stop()
            raise
        return servers, idp
    raise RuntimeError(f"the demo found no free ports in {PORT_ATTEMPTS} attempts")


async def _run(state: Path, dsn: str, simulate: int, postgres_data: Path) -> None:
    stop = stop_on_signals()
    servers, idp = await _start(state, dsn)
    settings = servers.settings
    try:
        token = await _first_free_token(settings, servers)
        print(
            "\nMicroCloud Cluster Manager demo is running.\n"
            f"  Web UI and Management API: https://127.0.0.1:{servers.management_port}/\n"
            f"{idp.banner(settings.management_url)}"
            f"  Cluster Connector:         {', '.join(settings.connector_addresses)}\n"
            f"  Health and metrics:        http://127.0.0.1:{servers.ops_port}/health/ready\n"
            f"  State folder:              {state}\n"
            f"  PostgreSQL data:           {postgres_data}\n"
            "\nA join token was created. On a MicroCloud member run:\n\n"
            f"  microcloud cluster-manager join {token}\n\n"
            "More tokens, from another terminal in this folder:\n"
            f"  uv run cluster-manager token create <name>{_state_option(state)}"
            "   (from a clone of the repository)\n"
            "Press Ctrl-C to stop; the data stays for the next run.\n",
            flush=True,
        )
        if simulate:
            await _simulate(settings, simulate, stop)
        else:
            await stop.wait()
    finally:
        await servers.stop()
        idp.stop()


def _state_option(state: Path) -> str:
    """The --state-dir option other commands need, unless the state is the default folder."""
    if state == (Path.cwd() / ".cluster-manager"):
        return ""
    return f" --state-dir {shlex.quote(str(state))}"


SIMULATED_PREFIX = "simulated"
FORGET_SIMULATED = [
    "DELETE FROM remote_clusters WHERE name LIKE 'simulated-%'",
    "DELETE FROM remote_cluster_tokens WHERE name LIKE 'simulated-%'",
]


async def _simulate(settings: Settings, count: int, stop: asyncio.Event) -> None:
    """Enrol ``count`` simulated clusters and let them report until the demo stops.

    Their keys live only in memory, so the ones of an earlier run are removed first.
    """
    from cluster_manager.db import create_pool
    from cluster_manager.fleet import Fleet

    pool = await create_pool(settings.database_dsn, max_size=2)
    try:
        for statement in FORGET_SIMULATED:
            await pool.execute(statement)

        async def make_token(name: str) -> str:
            token, _ = await tokens.create_token(pool, settings, name, "simulated by the demo")
            return token.encode()

        fleet = Fleet(count, prefix=SIMULATED_PREFIX, interval=settings.heartbeat_interval)
        joined = await fleet.enrol(make_token)
    finally:
        await pool.close()
    from cluster_manager.fleet.tunnel import keep_open

    tunnelled = fleet.joined[::2]  # half of them enable `reverse_tunnel`
    print(
        f"{joined} simulated clusters joined; they report every minute;"
        f" {len(tunnelled)} keep a reverse tunnel open.",
        flush=True,
    )
    runner = asyncio.create_task(fleet.run())
    tunnels = [asyncio.create_task(keep_open(cluster, stop)) for cluster in tunnelled]
    await stop.wait()
    fleet.stop()
    await runner
    await asyncio.gather(*tunnels, return_exceptions=True)


def run(state: Path, simulate: int = 0) -> None:
    """Start PostgreSQL and the servers; run until Ctrl-C."""
    logs.configure("INFO")
    postgres = EmbeddedPostgres(state / "postgres")
    dsn = postgres.start()
    try:
        asyncio.run(_run(state, dsn, simulate, postgres.data_dir))
    finally:
        postgres.stop()
