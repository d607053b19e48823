"""Installing the identity provider's npm packages: whole or not at all, one process at a time.

Found by CI on a fresh clone: a test run's processes installed ``tests/idp`` at once and the
later ones started the provider from a half-filled node_modules (``Cannot find package koa``),
because a folder counted as installed as soon as oidc-provider's package.json was there.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cluster_manager.dev_idp import (
    INSTALLED_MARKER,
    ensure_installed,
    npm_environment,
    source_dir,
)
from oidc_fixtures import start_idp


def _copy_of_the_provider(tmp_path: Path) -> Path:
    directory = tmp_path / "idp"
    directory.mkdir()
    for name in ("package.json", "package-lock.json", "server.mjs"):
        shutil.copyfile(source_dir() / name, directory / name)
    return directory


def test_processes_installing_at_once_each_get_a_whole_install(tmp_path):
    directory = _copy_of_the_provider(tmp_path)

    with ProcessPoolExecutor(max_workers=3) as pool:
        done = list(pool.map(ensure_installed, [directory] * 3))

    assert done == [directory] * 3
    for package in ("oidc-provider", "koa", "jose"):
        assert (directory / "node_modules" / package / "package.json").is_file(), package
    assert (directory / "node_modules" / INSTALLED_MARKER).is_file()


def test_a_half_filled_node_modules_is_installed_again(tmp_path):
    directory = _copy_of_the_provider(tmp_path)
    ensure_installed(directory)
    shutil.rmtree(directory / "node_modules" / "koa")
    (directory / "node_modules" / INSTALLED_MARKER).unlink()  # as if npm ci had not finished

    ensure_installed(directory)

    assert (directory / "node_modules" / "koa" / "package.json").is_file()


def test_a_stopped_provider_leaves_no_node_running():
    """Found when node came from PyPI: its Python launcher ran node as a child that outlived it.

    Stopping the demo or a test's provider then left node serving on the provider's port.
    """
    provider = start_idp()
    config_file = provider.process.config_file
    running = _processes_naming(config_file)

    provider.stop()

    assert running, "the provider's node process was not found while it ran"
    assert _processes_naming(config_file) == []


def _processes_naming(path: Path) -> list[int]:
    """Process ids whose command line names ``path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(path).encode() in command:
                found.append(int(entry.name))
    return found


def test_npm_from_pypi_is_told_the_machines_ca_file():
    """Found by CI: under tox, PyPI's node did not trust the registry proxy's CA.

    Debian's npm reads ``cafile`` from /etc/npmrc and Debian's node the system store; PyPI's
    node knows only its own CAs unless NODE_EXTRA_CA_CERTS names the machine's.
    """
    told = npm_environment({"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"})
    kept = npm_environment({"SSL_CERT_FILE": "/a.crt", "NODE_EXTRA_CA_CERTS": "/b.crt"})

    assert told["NODE_EXTRA_CA_CERTS"] == "/etc/ssl/certs/ca-certificates.crt"
    assert kept["NODE_EXTRA_CA_CERTS"] == "/b.crt"
    assert "NODE_EXTRA_CA_CERTS" not in npm_environment({})
