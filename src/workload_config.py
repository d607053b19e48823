"""The workload's configuration file: flat TOML keys, as the workload's settings define them.

The charm never imports the workload; it writes the keys the workload documents
(CONTRACT.md, ``cluster_manager/settings.py``) and the files those keys point to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from urllib.parse import quote

from config import CharmConfig

CONFIG_DIR = PurePosixPath("/etc/cluster-manager")
CONFIG_FILE = CONFIG_DIR / "config.toml"
MANAGEMENT_CERT_FILE = CONFIG_DIR / "management.crt"
MANAGEMENT_KEY_FILE = CONFIG_DIR / "management.key"
CONNECTOR_CERT_FILE = CONFIG_DIR / "connector.crt"
CONNECTOR_KEY_FILE = CONFIG_DIR / "connector.key"
SESSION_KEY_FILE = CONFIG_DIR / "session.key"
TRUSTED_CA_FILE = CONFIG_DIR / "trusted-ca.pem"
INTERNAL_KEY_FILE = CONFIG_DIR / "internal.key"

# The unit-to-unit channel (issue 12): other units reach this one on this port.
INTERNAL_PORT = 9004

# Traefik's TLS entrypoint listens on 443: what clusters dial when Traefik routes them.
TRAEFIK_TLS_PORT = 443


@dataclasses.dataclass(frozen=True)
class DatabaseCredentials:
    """What the database integration hands over."""

    endpoints: tuple[str, ...]  # "host:port", the primary first
    username: str
    password: str
    database: str
    tls: bool = False  # the provider has TLS on: require it

    @property
    def dsn(self) -> str:
        """A libpq URI for the first (primary) endpoint, credentials percent-encoded."""
        host_port = self.endpoints[0]
        user = quote(self.username, safe="")
        password = quote(self.password, safe="")
        database = quote(self.database, safe="")
        query = "?sslmode=require" if self.tls else ""
        return f"postgresql://{user}:{password}@{host_port}/{database}{query}"


@dataclasses.dataclass(frozen=True)
class Observability:
    """What the COS integrations hand the workload."""

    remote_write_urls: tuple[str, ...] = ()
    grafana_url: str = ""
    grafana_dashboard_uid: str = ""


def connector_addresses(
    connector_domain: str, routed_by_traefik: bool, port: int, unit_hosts: Sequence[str]
) -> list[str]:
    """The "host:port" list join tokens hand out to clusters.

    Behind Traefik, the connector domain on Traefik's TLS port. Without Traefik that name
    points at nothing that serves the connector, so tokens name the units themselves.
    """
    if routed_by_traefik:
        return [f"{connector_domain}:{TRAEFIK_TLS_PORT}"]
    return [f"{host}:{port}" for host in sorted(set(unit_hosts))]


def settings(
    config: CharmConfig,
    database: DatabaseCredentials,
    addresses: Sequence[str],
    with_trusted_ca: bool,
    observability: Observability,
    *,
    oidc_client_secret: str,
    internal_host: str,
) -> dict[str, object]:
    """The flat settings mapping the workload reads from its TOML file."""
    values: dict[str, object] = {
        "database_dsn": database.dsn,
        "log_level": config.log_level.upper(),
        "management_cert_file": str(MANAGEMENT_CERT_FILE),
        "management_key_file": str(MANAGEMENT_KEY_FILE),
        "management_url": config.management_url,
        "connector_cert_file": str(CONNECTOR_CERT_FILE),
        "connector_key_file": str(CONNECTOR_KEY_FILE),
        "connector_addresses": list(addresses),
        "oidc_issuer": config.oidc_issuer,
        "oidc_client_id": config.oidc_client_id,
        "oidc_client_secret": oidc_client_secret,
        "oidc_audience": config.oidc_audience,
        "oidc_groups_claim": config.oidc_groups_claim,
        "oidc_admin_group": config.oidc_admin_group,
        "oidc_operator_group": config.oidc_operator_group,
        "oidc_viewer_group": config.oidc_viewer_group,
        "session_key_file": str(SESSION_KEY_FILE),
        "stale_after_intervals": float(config.stale_after_intervals),
        "remote_write_urls": list(observability.remote_write_urls),
        "grafana_url": observability.grafana_url,
        "grafana_dashboard_uid": observability.grafana_dashboard_uid,
        "internal_port": INTERNAL_PORT,
        "internal_address": f"{internal_host}:{INTERNAL_PORT}",
        "internal_key_file": str(INTERNAL_KEY_FILE),
        "workers": config.worker_count,
    }
    if with_trusted_ca:
        values["trusted_ca_file"] = str(TRUSTED_CA_FILE)
    return values


def _toml_char(char: str) -> str:
    if char in ('"', "\\"):
        return "\\" + char
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04x}"
    return char


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_toml_char(char) for char in value) + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot render {value!r} as TOML")


def render_toml(values: Mapping[str, object]) -> str:
    """Render a flat mapping as TOML, one ``key = value`` line per setting."""
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in values.items())
