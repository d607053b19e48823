"""Settings, read once into one declared, frozen model.

Sources, later ones winning: the defaults below, a TOML file (flat keys, named by
``--config`` or ``CLUSTER_MANAGER_CONFIG``), then environment variables
``CLUSTER_MANAGER_<KEY>`` (upper case; lists comma-separated). Each field's description is
what ``cluster-manager serve --help`` and the README's settings table say
(``python -m cluster_manager.settings --markdown`` prints the table).
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

from cluster_manager.fields import field_message
from cluster_manager.passthrough import parse_rules

ENV_PREFIX = "CLUSTER_MANAGER_"
CONFIG_ENV = "CLUSTER_MANAGER_CONFIG"
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - a server listens on every interface


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


def doc(description: str, **constraints: Any) -> msgspec.Meta:
    """Field metadata: the description shown by --help and the README, and constraints."""
    return msgspec.Meta(description=description, **constraints)


Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the workload is told from outside."""

    database_dsn: Annotated[str, doc("PostgreSQL connection string")] = ""
    log_level: Annotated[str, doc("DEBUG, INFO, WARNING or ERROR")] = "INFO"

    # Management API (web UI, JSON for people).
    management_host: Annotated[str, doc("Management API (HTTPS) listen address")] = ANY_ADDRESS
    management_port: Annotated[Port, doc("Management API port")] = 9000
    management_cert_file: Annotated[str, doc("Management API TLS certificate (PEM)")] = ""
    management_key_file: Annotated[str, doc("Management API TLS private key (PEM)")] = ""
    management_url: Annotated[
        str, doc("public https URL of the UI; sign-in (OIDC) redirects come back here")
    ] = ""

    # Cluster Connector (the API MicroCloud clusters call).
    connector_host: Annotated[str, doc("Cluster Connector (HTTPS) listen address")] = ANY_ADDRESS
    connector_port: Annotated[Port, doc("Cluster Connector port")] = 9001
    connector_cert_file: Annotated[str, doc("Cluster Connector TLS certificate (PEM)")] = ""
    connector_key_file: Annotated[str, doc("Cluster Connector TLS private key (PEM)")] = ""
    connector_addresses: Annotated[
        tuple[str, ...], doc("host:port list written into join tokens, tried in order")
    ] = ()

    # Plain-HTTP port for probes and Prometheus: /health/live, /health/ready, /metrics.
    ops_host: Annotated[str, doc("ops (plain HTTP: probes, /metrics) listen address")] = (
        ANY_ADDRESS
    )
    ops_port: Annotated[Port, doc("ops port: /health/live, /health/ready, /metrics")] = 9002

    heartbeat_interval: Annotated[
        int, doc("seconds between heartbeats, told to clusters", ge=1)
    ] = 60
    stale_after_intervals: Annotated[
        float, doc("a cluster is stale after this many missed heartbeat intervals", ge=1)
    ] = 3.0
    token_expiry: Annotated[int, doc("default join-token lifetime, seconds", ge=60)] = 86400

    # Connector limits.
    max_heartbeat_bytes: Annotated[
        int, doc("largest heartbeat body (after decompression), bytes", ge=1)
    ] = 16 * 1024 * 1024
    max_join_bytes: Annotated[int, doc("largest join body after decompression, bytes", ge=1)] = (
        64 * 1024
    )
    # Sized so that a cluster reporting every 10 s or slower is never refused, even while two
    # members send during a change of database leader.
    heartbeat_rate_per_minute: Annotated[
        float, doc("heartbeats per minute per cluster certificate", gt=0)
    ] = 12.0
    heartbeat_burst: Annotated[int, doc("heartbeat burst per cluster certificate", ge=1)] = 20
    join_rate_per_minute: Annotated[
        float,
        doc("joins per minute per client certificate, and per name once proven", gt=0),
    ] = 5.0
    join_burst: Annotated[int, doc("join burst per certificate and per name", ge=1)] = 5
    connector_rate_per_second: Annotated[
        float, doc("ceiling over identified clusters' requests, per second", gt=0)
    ] = 1000.0
    connector_burst: Annotated[int, doc("burst over identified clusters' requests", ge=1)] = 2000
    probe_rate_per_second: Annotated[
        float, doc("requests without a client certificate (GET / probes), per second", gt=0)
    ] = 200.0
    probe_burst: Annotated[int, doc("burst of requests without a client certificate", ge=1)] = 400
    unverified_rate_per_second: Annotated[
        float, doc("joins and unknown certificates (database work), per second", gt=0)
    ] = 100.0
    unverified_burst: Annotated[int, doc("burst of joins and unknown certificates", ge=1)] = 500
    leave_rate_per_minute: Annotated[
        float, doc("leaves per minute per cluster certificate (not the heartbeat bucket)", gt=0)
    ] = 6.0
    leave_burst: Annotated[int, doc("leave burst per cluster certificate", ge=1)] = 5
    rate_limit_log_interval: Annotated[
        Seconds, doc("seconds between log lines for one refused key and reason")
    ] = 60.0
    connection_max_age: Annotated[Seconds, doc("seconds a connector connection may live")] = 30.0
    tls_handshake_timeout: Annotated[Seconds, doc("seconds a TLS handshake may take")] = 10.0

    # Management API sign-in (OpenID Connect).
    oidc_issuer: Annotated[str, doc("OpenID Connect issuer URL")] = ""
    oidc_client_id: Annotated[str, doc("OpenID Connect client ID")] = ""
    oidc_client_secret: Annotated[str, doc("client secret; empty for a public client")] = ""
    oidc_audience: Annotated[str, doc("audience parameter of the authorization request")] = ""
    oidc_scopes: Annotated[tuple[str, ...], doc("scopes asked for")] = (
        "openid",
        "email",
        "profile",
        "offline_access",
    )
    oidc_groups_claim: Annotated[str, doc("claim listing the user's groups")] = "mcm-idp-groups"
    oidc_admin_group: Annotated[str, doc("group whose members may manage")] = "admins"
    oidc_operator_group: Annotated[
        str,
        doc("group whose members may read and change instances' state (empty: nobody)"),
    ] = ""
    oidc_viewer_group: Annotated[str, doc("group whose members may only read (empty: nobody)")] = (
        ""
    )
    session_key_file: Annotated[
        str, doc("32+ random bytes shared by every unit; seals session cookies")
    ] = ""
    session_lifetime: Annotated[int, doc("longest a session lasts, seconds", ge=60)] = 8 * 3600

    # Audit log (calls through the manager).
    audit_read_calls: Annotated[
        bool, doc("record read-only calls to clusters' LXD too, not only changes")
    ] = False
    audit_retention_days: Annotated[
        int, doc("days audit entries are kept before pruning", ge=1)
    ] = 90

    # Outbound TLS (identity provider, remote write): extra CAs to trust.
    trusted_ca_file: Annotated[str, doc("extra CAs (PEM) to trust for outbound TLS")] = ""

    # Observability (COS).
    remote_write_urls: Annotated[tuple[str, ...], doc("Prometheus remote-write URLs")] = ()
    grafana_url: Annotated[str, doc("Grafana URL the UI links to")] = ""
    grafana_dashboard_uid: Annotated[str, doc("Grafana dashboard the UI links to")] = ""

    # Reverse tunnel and the unit-to-unit channel.
    internal_host: Annotated[str, doc("unit-to-unit channel (plain HTTP) listen address")] = (
        ANY_ADDRESS
    )
    internal_port: Annotated[Port, doc("unit-to-unit channel port")] = 9004
    internal_address: Annotated[
        str, doc("host:port other units reach this one at (default 127.0.0.1:<internal_port>)")
    ] = ""
    internal_key_file: Annotated[
        str, doc("hex key (32+ bytes decoded) shared by every unit; signs unit-to-unit requests")
    ] = ""
    tunnel_request_timeout: Annotated[
        Seconds, doc("seconds a request through a tunnel may take (the daemon gives LXD 30)")
    ] = 35.0
    operation_wait_timeout: Annotated[
        int,
        doc(
            "seconds to wait for an LXD operation (state change) before reporting it running",
            ge=1,
            le=3600,
        ),
    ] = 25
    lxd_passthrough_allow_extra: Annotated[
        tuple[str, ...],
        doc(
            "more 'METHOD /1.0/path' rules the raw LXD pass-through lets by ('*' one segment,"
            " final '/**' anything below), beside the built-in reads and state changes"
        ),
    ] = ()
    lxd_ui_directory: Annotated[
        str,
        doc(
            "a copy of the LXD UI's files (e.g. /snap/lxd/current/share/lxd-ui) served at"
            " /lxd-ui/<cluster>/ui/; empty: ask the cluster's LXD for /ui/ through the tunnel"
        ),
    ] = ""
    fleet_fanout_concurrency: Annotated[
        int, doc("clusters asked at once by a fleet-wide search or bulk action", ge=1, le=1000)
    ] = 32
    fleet_cluster_timeout: Annotated[
        Seconds, doc("seconds one cluster may take to answer a fleet-wide search")
    ] = 10.0
    tunnel_max_frame_bytes: Annotated[
        int, doc("largest tunnel frame, bytes, either direction", ge=1)
    ] = 8 * 1024 * 1024
    tunnel_max_in_flight: Annotated[
        int, doc("requests in flight per tunnel; more are refused", ge=1)
    ] = 16
    tunnel_ping_interval: Annotated[Seconds, doc("seconds between pings of an idle tunnel")] = 20.0
    tunnel_pong_timeout: Annotated[
        Seconds, doc("seconds an idle tunnel may stay silent before it is closed")
    ] = 10.0
    tunnel_liveness_interval: Annotated[
        Seconds,
        doc(
            "seconds between two refreshes of a unit's tunnel records; a record not refreshed "
            "for 3 intervals (its unit died) counts as not connected"
        ),
    ] = 10.0
    workers: Annotated[
        int,
        doc(
            "server processes sharing the ports; 0: one per CPU available to the container",
            ge=0,
            le=64,
        ),
    ] = 0

    def __post_init__(self) -> None:
        """Refuse what a declared constraint cannot say (msgspec names the setting).

        Checked here too, since a Struct built directly does not check its constraints.
        """
        for name, unit in RATE_LIMITS.items():
            rate = getattr(self, f"{name}_rate_per_{unit}")
            if not rate > 0 or getattr(self, f"{name}_burst") < 1:
                raise SettingsError(
                    f"{name}_rate_per_{unit}: must be above 0 and {name}_burst at least 1"
                )
        if not self.internal_address:
            msgspec.structs.force_setattr(
                self, "internal_address", f"127.0.0.1:{self.internal_port}"
            )
        try:
            parse_rules(self.lxd_passthrough_allow_extra)
        except ValueError as error:
            raise SettingsError(f"lxd_passthrough_allow_extra: {error}") from None
        for address in self.connector_addresses:
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"connector_addresses: {address!r} is not host:port")

    @property
    def stale_after_seconds(self) -> float:
        """Seconds without a heartbeat after which a cluster is stale."""
        return self.heartbeat_interval * self.stale_after_intervals

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed."""
        return msgspec.structs.replace(self, **changes)


FIELDS = msgspec.inspect.type_info(Settings).fields  # type: ignore[union-attr]
NAMES = frozenset(field.name for field in FIELDS)
_LISTS = frozenset(
    field.name
    for field in FIELDS
    if isinstance(field.type.type, msgspec.inspect.VarTupleType)  # type: ignore[union-attr]
)


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in NAMES:
        value = environ.get(ENV_PREFIX + name.upper())
        if value is not None and name in _LISTS:
            values[name] = [part.strip() for part in value.split(",") if part.strip()]
        elif value is not None:
            values[name] = value
    return values


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path}: {error}") from None
    for key in data:
        if key not in NAMES:
            raise SettingsError(f"config file {path}: unknown setting {key!r}")
    return data


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read settings from the config file, the environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or environ.get(CONFIG_ENV) or None
    if config_file:
        values.update(_from_file(Path(config_file)))
    values.update(_from_environment(environ))
    values.update((key, value) for key, value in overrides.items() if value is not None)
    try:
        return msgspec.convert(values, type=Settings, strict=False)
    except msgspec.ValidationError as error:
        raise SettingsError(field_message(error, "settings")) from None


def render_config(values: Mapping[str, Any]) -> str:
    """Render a flat mapping of settings as the TOML the loader reads."""
    lines = []
    for key, value in values.items():
        if key not in NAMES:
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


def _shown_default(field: msgspec.inspect.Field) -> str:
    default = field.default
    if isinstance(default, tuple):
        return ", ".join(default)
    return str(default)


def describe() -> list[tuple[str, str, str]]:
    """(key, default, description) of every setting, in declaration order."""
    return [
        (field.name, _shown_default(field), field.type.extra_json_schema["description"])  # type: ignore[union-attr]
        for field in FIELDS
    ]


def help_text() -> str:
    """Every setting, for ``cluster-manager serve --help``."""
    rows = describe()
    width = max(len(key) for key, _, _ in rows)
    lines = [
        f"settings (TOML key in --config, or environment {ENV_PREFIX}<KEY>; lists "
        "comma-separated):"
    ]
    for key, default, description in rows:
        shown = f" (default: {default})" if default else ""
        lines.append(f"  {key.ljust(width)}  {description}{shown}")
    return "\n".join(lines)


def markdown_table() -> str:
    """Every setting as the README's Markdown table."""
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, default, description in describe():
        shown = f"`{default}`" if default else ""
        lines.append(f"| `{key}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m cluster_manager.settings --markdown")
    sys.stdout.write(markdown_table())
