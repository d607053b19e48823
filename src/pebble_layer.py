"""The Pebble layer that runs the Cluster Manager in the workload container."""

from __future__ import annotations

from pathlib import PurePosixPath

import ops

SERVICE = "cluster-manager"
COMMAND = "cluster-manager"
MANAGEMENT_PORT = 9000
CONNECTOR_PORT = 9001
OPS_PORT = 9002
LIVENESS_CHECK = "cluster-manager-alive"
READINESS_CHECK = "cluster-manager-ready"


def cli(config_file: PurePosixPath, *arguments: str) -> list[str]:
    """The workload CLI invoked with the charm's configuration file."""
    return [COMMAND, "--config", str(config_file), *arguments]


def build_layer(config_file: PurePosixPath, user: str) -> ops.pebble.Layer:
    """One service serving all three ports as ``user``, restarted when it stops being alive."""
    return ops.pebble.Layer(
        {
            "summary": "MicroCloud Cluster Manager",
            "description": "Management API, Cluster Connector and health port in one process.",
            "services": {
                SERVICE: {
                    "override": "replace",
                    "summary": "cluster manager servers",
                    "command": " ".join(cli(config_file, "serve")),
                    "startup": "enabled",
                    "user": user,
                    "group": user,
                    "on-failure": "restart",
                    "on-check-failure": {LIVENESS_CHECK: "restart"},
                }
            },
            "checks": {
                LIVENESS_CHECK: {
                    "override": "replace",
                    "level": "alive",
                    "period": "10s",
                    "timeout": "3s",
                    "threshold": 3,
                    "http": {"url": f"http://localhost:{OPS_PORT}/health/live"},
                },
                READINESS_CHECK: {
                    "override": "replace",
                    "level": "ready",
                    "period": "10s",
                    "timeout": "3s",
                    "threshold": 3,
                    "http": {"url": f"http://localhost:{OPS_PORT}/health/ready"},
                },
            },
        }
    )
