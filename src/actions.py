"""Action parameters and the workload CLI command each action runs."""

from __future__ import annotations

import dataclasses
import re

# Cluster names as MicroCloud accepts them; bounded so no action can pass an abusive value.
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_DURATION = re.compile(r"^[0-9]{1,9}[smhd]$")
_MAX_DESCRIPTION = 1024

JOIN_COMMAND = "microcloud cluster-manager join"


def _check_cluster(name: str) -> None:
    if not _CLUSTER_NAME.match(name):
        raise ValueError(
            f"cluster: {name!r} is not a cluster name (letters, digits, '.', '_', '-'; "
            "at most 63 characters)"
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnrollClusterParams:
    """Parameters of enroll-cluster."""

    cluster: str
    description: str = ""
    expires_in: str = ""

    def __post_init__(self) -> None:
        """Refuse values the CLI would refuse, with the parameter's name."""
        _check_cluster(self.cluster)
        if len(self.description) > _MAX_DESCRIPTION or "\n" in self.description:
            raise ValueError(f"description: one line of at most {_MAX_DESCRIPTION} characters")
        if self.expires_in and not _DURATION.match(self.expires_in):
            raise ValueError(
                f"expires-in: {self.expires_in!r} is not a duration like 30m, 12h, 7d or 3600s"
            )

    def arguments(self) -> list[str]:
        """Arguments of ``cluster-manager token create``."""
        arguments = ["token", "create", self.cluster]
        # "--opt=value" keeps a value starting with "-" from reading as an option.
        if self.description:
            arguments.append(f"--description={self.description}")
        if self.expires_in:
            arguments.append(f"--expires-in={self.expires_in}")
        return arguments


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClusterParams:
    """Parameters of the actions that name one cluster."""

    cluster: str

    def __post_init__(self) -> None:
        """Refuse values the CLI would refuse, with the parameter's name."""
        _check_cluster(self.cluster)


_LXD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
STATE_ACTIONS = ("start", "stop", "restart")


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstanceStateParams:
    """Parameters of instance-state."""

    cluster: str
    instance: str
    action: str

    def __post_init__(self) -> None:
        """Refuse values the CLI would refuse, with the parameter's name."""
        _check_cluster(self.cluster)
        if not _LXD_NAME.match(self.instance):
            raise ValueError(
                f"instance: {self.instance!r} is not an instance name (letters, digits, '.',"
                " '_', '-'; at most 63 characters)"
            )
        if self.action not in STATE_ACTIONS:
            raise ValueError(f"action: {self.action!r} is not one of start, stop, restart")

    def arguments(self) -> list[str]:
        """Arguments of ``cluster-manager cluster instance-state``."""
        return [
            "cluster",
            "instance-state",
            self.cluster,
            self.instance,
            self.action,
            "--format",
            "json",
        ]


def workload_error(stderr: str | None) -> str:
    """The workload's one-line error, without its ``Error: `` prefix."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    if not lines:
        return "the workload command failed without a message"
    message = lines[-1]
    return message.removeprefix("Error: ").removeprefix("Error:").strip()
