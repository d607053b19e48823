"""The charm's configuration, loaded once per hook with ``CharmBase.load_config``."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlsplit

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_WORKERS = 64  # as the workload's cluster_manager.workers.MAX_WORKERS

# A DNS name: labels of letters, digits and inner hyphens, at least two labels.
_DNS_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})+$")

# Options without which the workload cannot serve, in the order they are reported.
REQUIRED_OPTIONS = (
    "management-api-domain",
    "cluster-connector-domain",
    "oidc-issuer",
    "oidc-client-id",
)

_MAX_TEXT = 1024
# A Juju secret URI: "secret:", optionally "//<model-uuid>/", then a 20-character ID.
_SECRET_URI = re.compile(r"^secret:(//[0-9a-f-]{36}/)?[0-9a-z]{20}$")
# The key of a Juju user secret that holds the OIDC client secret.
OIDC_SECRET_KEY = "client-secret"


class ConfigError(ValueError):
    """An option has a value the charm cannot use; the message names the option."""


def _check_domain(option: str, value: str) -> None:
    if value and (len(value) > 253 or not _DNS_NAME.match(value)):
        raise ConfigError(f"{option}: {value!r} is not a lower-case DNS name")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CharmConfig:
    """Every option of charmcraft.yaml, validated; field names are the options'."""

    management_api_domain: str = ""
    cluster_connector_domain: str = ""
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_audience: str = ""
    oidc_groups_claim: str = "mcm-idp-groups"
    oidc_admin_group: str = "admins"
    oidc_operator_group: str = ""
    oidc_viewer_group: str = ""
    log_level: str = "info"
    stale_after_intervals: float = 3.0
    traefik_health_check: bool = False
    workers: str = "auto"

    def __post_init__(self) -> None:
        """Refuse values the workload could not run with, naming the option."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            option = field.name.replace("_", "-")
            if isinstance(value, str) and (len(value) > _MAX_TEXT or "\n" in value):
                raise ConfigError(f"{option}: must be one line of at most {_MAX_TEXT} characters")
        _check_domain("management-api-domain", self.management_api_domain)
        _check_domain("cluster-connector-domain", self.cluster_connector_domain)
        if (
            self.management_api_domain
            and self.management_api_domain == self.cluster_connector_domain
        ):
            raise ConfigError("cluster-connector-domain: must differ from management-api-domain")
        if self.oidc_issuer:
            parts = urlsplit(self.oidc_issuer)
            if parts.scheme != "https" or not parts.hostname:
                raise ConfigError(f"oidc-issuer: {self.oidc_issuer!r} is not an https URL")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(
                f"log-level: {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        if not self.stale_after_intervals >= 1:
            raise ConfigError("stale-after-intervals: must be at least 1")
        if self.workers != "auto" and not (
            self.workers.isdigit() and 1 <= int(self.workers) <= MAX_WORKERS
        ):
            raise ConfigError(f"workers: {self.workers!r} is not 'auto' or 1 to {MAX_WORKERS}")
        if not self.oidc_groups_claim.strip():
            raise ConfigError("oidc-groups-claim: must not be empty")
        if not self.oidc_admin_group.strip():
            raise ConfigError("oidc-admin-group: must not be empty")
        if self.oidc_client_secret.startswith("secret:") and not _SECRET_URI.match(
            self.oidc_client_secret
        ):
            raise ConfigError("oidc-client-secret: 'secret:' but not a Juju secret URI")

    @property
    def oidc_client_secret_uri(self) -> str | None:
        """The Juju secret holding the client secret, if the option names one."""
        return self.oidc_client_secret if self.oidc_client_secret.startswith("secret:") else None

    def missing_options(self) -> list[str]:
        """Names of the required options that are not set."""
        return [
            option for option in REQUIRED_OPTIONS if not getattr(self, option.replace("-", "_"))
        ]

    @property
    def worker_count(self) -> int:
        """The workload's ``workers`` setting: the number, or 0 for one per available CPU."""
        return 0 if self.workers == "auto" else int(self.workers)

    @property
    def management_url(self) -> str:
        """Public URL of the web UI, behind Traefik's TLS entrypoint."""
        return f"https://{self.management_api_domain}"
