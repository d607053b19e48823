"""Settings, read once into a frozen dataclass.

Sources, later ones winning: the defaults below, a TOML file (flat keys, named by
``--config`` or ``CLUSTER_MANAGER_CONFIG``), then environment variables
``CLUSTER_MANAGER_<KEY>`` (upper case; lists comma-separated).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "CLUSTER_MANAGER_"
CONFIG_ENV = "CLUSTER_MANAGER_CONFIG"


# Connector token buckets: name -> the unit of its "<name>_rate_per_<unit>" setting.
RATE_LIMITS = {
    "heartbeat": "minute",
    "leave": "minute",
    "join": "minute",
    "connector": "second",
    "unverified": "second",
    "probe": "second",
}


class SettingsError(ValueError):
    """A setting is missing or has a value of the wrong kind."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the workload is told from outside."""

    database_dsn: str = ""
    log_level: str = "INFO"

    # Management API (web UI, JSON for people).
    management_host: str = "0.0.0.0"  # noqa: S104 - a server listens on every interface
    management_port: int = 9000
    management_cert_file: str = ""
    management_key_file: str = ""
    management_url: str = ""  # public https URL of the UI; OIDC redirects come back here

    # Cluster Connector (the API MicroCloud clusters call).
    connector_host: str = "0.0.0.0"  # noqa: S104
    connector_port: int = 9001
    connector_cert_file: str = ""
    connector_key_file: str = ""
    connector_addresses: tuple[str, ...] = ()  # "host:port" written into join tokens

    # Plain-HTTP port for probes and Prometheus: /health/live, /health/ready, /metrics.
    ops_host: str = "0.0.0.0"  # noqa: S104
    ops_port: int = 9002

    heartbeat_interval: int = 60  # seconds, what clusters use
    stale_after_intervals: float = 3.0  # a cluster is stale after this many missed intervals
    token_expiry: int = 86400  # default join-token lifetime, seconds

    # Connector limits.
    max_heartbeat_bytes: int = 16 * 1024 * 1024
    max_join_bytes: int = 64 * 1024
    # Per cluster certificate. Sized so that a cluster reporting every 10 s or slower is never
    # refused, even while two members send during a change of database leader.
    heartbeat_rate_per_minute: float = 12.0
    heartbeat_burst: int = 20
    # Join attempts per TLS client certificate, and per cluster name once the secret is proven.
    join_rate_per_minute: float = 5.0
    join_burst: int = 5
    connector_rate_per_second: float = 1000.0  # ceiling over identified clusters' requests
    connector_burst: int = 2000
    connection_max_age: float = 30.0  # seconds a connector connection may live
    tls_handshake_timeout: float = 10.0

    # Management API sign-in (OpenID Connect).
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_audience: str = ""
    oidc_scopes: tuple[str, ...] = ("openid", "email", "profile", "offline_access")
    oidc_groups_claim: str = "mcm-idp-groups"
    oidc_admin_group: str = "admins"
    session_key_file: str = ""  # 32+ random bytes shared by every unit, seals session cookies
    session_lifetime: int = 8 * 3600

    # Outbound TLS (identity provider, remote write): extra CAs to trust.
    trusted_ca_file: str = ""

    # Observability (COS).
    remote_write_urls: tuple[str, ...] = ()
    grafana_url: str = ""
    grafana_dashboard_uid: str = ""

    # Connector limits (issue 12/13).
    probe_rate_per_second: float = 200.0  # requests without a client certificate (GET / probes)
    probe_burst: int = 400
    unverified_rate_per_second: float = 100.0  # joins and unknown certificates (database work)
    unverified_burst: int = 500
    leave_rate_per_minute: float = 6.0  # per cluster certificate; never the heartbeat bucket
    leave_burst: int = 5
    rate_limit_log_interval: float = 60.0  # one log line per refused key and reason per interval
    # Reverse tunnel and unit-to-unit channel (issue 12).
    internal_host: str = "0.0.0.0"  # noqa: S104
    internal_port: int = 9004
    internal_address: str = ""  # "host:port" other units use; default 127.0.0.1:<internal_port>
    internal_key_file: str = ""  # hex key (32+ bytes decoded) shared by every unit
    tunnel_request_timeout: float = 35.0  # the daemon gives LXD 30 s, then answers 500
    tunnel_max_frame_bytes: int = 8 * 1024 * 1024  # either direction
    tunnel_max_in_flight: int = 16  # per cluster; more are refused, the queue keeps order
    tunnel_ping_interval: float = 20.0  # ping an idle tunnel this often
    tunnel_pong_timeout: float = 10.0  # close an idle tunnel that answers nothing this long
    workers: int = 0  # server processes sharing the ports; 0: one per CPU available (issue 16)

    def __post_init__(self) -> None:
        """Refuse values no server could run with."""
        for name in ("management_port", "connector_port", "ops_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise SettingsError(f"{name}: {port} is not a TCP port")
        if self.stale_after_intervals < 1:
            raise SettingsError("stale_after_intervals: must be at least 1")
        if self.heartbeat_interval < 1:
            raise SettingsError("heartbeat_interval: must be at least 1 second")
        for name, unit in RATE_LIMITS.items():
            rate = getattr(self, f"{name}_rate_per_{unit}")
            if not rate > 0 or getattr(self, f"{name}_burst") < 1:
                raise SettingsError(
                    f"{name}_rate_per_{unit} must be above 0 and {name}_burst at least 1"
                )
        if not 0 <= self.internal_port <= 65535:
            raise SettingsError(f"internal_port: {self.internal_port} is not a TCP port")
        if not self.internal_address:
            object.__setattr__(self, "internal_address", f"127.0.0.1:{self.internal_port}")
        for address in self.connector_addresses:
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise SettingsError(f"connector_addresses: {address!r} is not host:port")

    @property
    def stale_after_seconds(self) -> float:
        """Seconds without a heartbeat after which a cluster is stale."""
        return self.heartbeat_interval * self.stale_after_intervals

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    try:
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int and not isinstance(value, bool):
            return int(value)
        if kind is float and not isinstance(value, bool):
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise TypeError
            return value
        if kind == tuple[str, ...]:
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise TypeError
    except (TypeError, ValueError):
        pass
    raise SettingsError(f"{name}: {value!r} is not a valid value")


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read settings from the config file, the environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    config_file = config_file or environ.get(CONFIG_ENV) or None
    if config_file:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise SettingsError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"config file {path}: {error}") from None
        for key, value in data.items():
            if key not in hints:
                raise SettingsError(f"config file {path}: unknown setting {key!r}")
            values[key] = _coerce(key, hints[key], value)
    for key, kind in hints.items():
        env_value = environ.get(ENV_PREFIX + key.upper())
        if env_value is not None:
            values[key] = _coerce(key, kind, env_value)
    for key, value in overrides.items():
        if value is not None:
            values[key] = _coerce(key, hints[key], value)
    return Settings(**values)


def render_config(values: Mapping[str, Any]) -> str:
    """Render a flat mapping of settings as the TOML the loader reads."""
    hints = get_type_hints(Settings)
    lines = []
    for key, value in values.items():
        if key not in hints:
            raise SettingsError(f"unknown setting {key!r}")
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise SettingsError(f"cannot render {value!r}")
