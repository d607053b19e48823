"""The two servers under load, each in its own process, and how much CPU they use.

:class:`RealServer` is ``cluster-manager --config FILE serve`` on an embedded PostgreSQL with
rate limits raised out of the way; :class:`BaselineServer` runs :mod:`.baseline`.
Both serve the same connector certificate (ECDSA P-256, SAN 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from cluster_manager import db, tokens
from cluster_manager.certificates import ensure_self_signed_files
from cluster_manager.embedded_postgres import EmbeddedPostgres
from cluster_manager.join_token import JoinToken
from cluster_manager.ports import unused_port
from cluster_manager.processes import stop_process
from cluster_manager.settings import load_settings, render_config

HOST = "127.0.0.1"
UNLIMITED = 10**9
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port nobody holds, below the ephemeral range, never handed out before (see ports)."""
    return unused_port()


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its living descendants, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(entry.path, "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            parents[int(entry.name)] = int(fields[1])
            times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo += [child for child, parent in parents.items() if parent == current]
    return total


def prioritise(niceness: int) -> None:
    """Run this process and the processes it starts from now on at ``niceness`` (0: leave).

    With the kernel's autogroups, niceness only ranks the processes of one session against each
    other; the session's own niceness (/proc/PID/autogroup) ranks it against other sessions'
    work, so both are set.
    """
    if not niceness:
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    autogroup = Path("/proc/self/autogroup")  # e.g. "/autogroup-5 nice 0"
    with contextlib.suppress(OSError, ValueError, IndexError):
        before = int(autogroup.read_text().split()[-1])
        autogroup.write_text(str(niceness))
        # The session outlives this process: give it its niceness back at exit.
        atexit.register(lambda: autogroup.write_text(str(before)))


def machine_busy_seconds() -> float:
    """CPU-seconds every CPU of the machine has spent busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICKS


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Wait until something accepts connections on the port; raise if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"server did not listen on {port}:\n{log.read_text()[-3000:]}")


class ServerProcess:
    """A server started as a child process, stopped with SIGTERM."""

    name = "server"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.process is not None
        return self.process.pid

    def _spawn(self, command: list[str]) -> None:
        log_file = self.directory / f"{self.name}.log"
        with open(log_file, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)  # noqa: S603
        wait_for_port(self.port, self.process, log_file, 60)

    def stop(self) -> None:
        """Terminate and wait."""
        stop_process(self.process, 15)

    def cpu_seconds(self) -> float:
        """CPU used so far by the server process."""
        return tree_cpu_seconds(self.pid)

    def rss(self) -> int:
        """Resident memory of the server process now, in bytes."""
        return rss_bytes(self.pid)


STATEMENTS = """
SELECT query, calls FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%pg_stat_statements%'
ORDER BY calls DESC
"""


async def _execute(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def connector_certificate(directory: Path) -> tuple[Path, Path, str]:
    """The connector certificate both servers use; returns (cert, key, fingerprint)."""
    cert, key = directory / "connector.crt", directory / "connector.key"
    fingerprint = ensure_self_signed_files(cert, key, "bench-connector", [HOST])
    return cert, key, fingerprint


class BaselineServer(ServerProcess):
    """The no-op server with the connector's TLS stack."""

    name = "baseline"

    def __init__(self, directory: Path, *, uvloop: bool = False) -> None:
        super().__init__(directory)
        self.uvloop = uvloop

    def start(self) -> None:
        """Start and wait until it listens."""
        cert, key, _ = connector_certificate(self.directory)
        self._spawn(
            [sys.executable, "-m", "cluster_manager.bench.baseline", "--cert", str(cert),
             "--key", str(key), "--host", HOST, "--port", str(self.port)]
            + (["--uvloop"] if self.uvloop else [])
        )  # fmt: skip

    def token_for(self, name: str) -> str:
        """A token that points at the baseline (which accepts anything)."""
        _, _, fingerprint = connector_certificate(self.directory)
        return JoinToken(
            secret="unused",  # the baseline checks nothing
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            addresses=(f"{HOST}:{self.port}",),
            server_name=name,
            fingerprint=fingerprint,
        ).encode()


class RealServer(ServerProcess):
    """``cluster-manager serve`` on an embedded PostgreSQL."""

    name = "cluster-manager"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.postgres = EmbeddedPostgres(
            directory / "postgres",
            settings={"shared_preload_libraries": "pg_stat_statements"},
        )
        self.config = directory / "cluster-manager.toml"
        self.dsn = ""
        self.extra: dict[str, object] = {}  # more settings (e.g. the tunnel benchmark's)

    def start(self) -> None:
        """Start PostgreSQL, write the config, start the server, wait until it listens."""
        dsn = self.dsn = self.postgres.start()
        asyncio.run(_execute(dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
        cert, key, _ = connector_certificate(self.directory)
        management_cert, management_key = (
            self.directory / "management.crt",
            self.directory / "management.key",
        )
        ensure_self_signed_files(management_cert, management_key, "bench-management", [HOST])
        session_key = self.directory / "session.key"
        session_key.write_text(os.urandom(32).hex())  # as the charm writes it
        values = {
            "database_dsn": dsn,
            "log_level": "WARNING",
            "management_host": HOST,
            "management_port": free_port(),
            "management_cert_file": str(management_cert),
            "management_key_file": str(management_key),
            "connector_host": HOST,
            "connector_port": self.port,
            "connector_cert_file": str(cert),
            "connector_key_file": str(key),
            "connector_addresses": [f"{HOST}:{self.port}"],
            "ops_host": HOST,
            "ops_port": free_port(),
            "session_key_file": str(session_key),
            "heartbeat_rate_per_minute": float(UNLIMITED),
            "heartbeat_burst": UNLIMITED,
            "join_rate_per_minute": float(UNLIMITED),
            "join_burst": UNLIMITED,
            "connector_rate_per_second": float(UNLIMITED),
            "connector_burst": UNLIMITED,
            "probe_rate_per_second": float(UNLIMITED),
            "probe_burst": UNLIMITED,
            "unverified_rate_per_second": float(UNLIMITED),
            "unverified_burst": UNLIMITED,
            "workers": 1,
            **self.extra,
        }
        self.config.write_text(render_config(values))
        self._spawn(
            [sys.executable, "-m", "cluster_manager.cli", "--config", str(self.config), "serve"]
        )

    def create_tokens(self, names: list[str]) -> list[str]:
        """Create one join token per name through the service function the CLI uses."""
        settings = load_settings(self.config)

        async def create() -> list[str]:
            pool = await db.create_pool(settings.database_dsn, max_size=4)
            try:
                return [
                    (await tokens.create_token(pool, settings, name))[0].encode() for name in names
                ]
            finally:
                await pool.close()

        return asyncio.run(create())

    def create_tokens_quickly(self, names: list[str], concurrency: int = 8) -> list[str]:
        """Like :meth:`create_tokens`, on a few connections at once (for large fleets)."""
        settings = load_settings(self.config)

        async def create() -> list[str]:
            pool = await db.create_pool(settings.database_dsn, max_size=concurrency)
            limit = asyncio.Semaphore(concurrency)

            async def one(name: str) -> str:
                async with limit:
                    return (await tokens.create_token(pool, settings, name))[0].encode()

            try:
                return list(await asyncio.gather(*(one(name) for name in names)))
            finally:
                await pool.close()

        return asyncio.run(create())

    def reset_statements(self) -> None:
        """Forget the statement counts so far (pg_stat_statements)."""
        asyncio.run(_execute(self.dsn, "SELECT pg_stat_statements_reset()"))

    def statements(self) -> list[tuple[str, int]]:
        """Statements run on the manager's database since the reset, with their call counts."""

        async def read() -> list[tuple[str, int]]:
            connection = await asyncpg.connect(self.dsn, timeout=10)
            try:
                rows = await connection.fetch(STATEMENTS)
            finally:
                await connection.close()
            return [(row["query"], row["calls"]) for row in rows]

        return asyncio.run(read())

    def database_cpu_seconds(self) -> float:
        """CPU used so far by PostgreSQL (the postmaster and its backends)."""
        process = self.postgres.process
        return tree_cpu_seconds(process.pid) if process is not None else 0.0

    def stop(self) -> None:
        """Stop the server, then PostgreSQL."""
        super().stop()
        self.postgres.stop()
