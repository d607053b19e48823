"""A small in-memory LXD API, what a simulated cluster answers through its reverse tunnel.

Shapes follow LXD's REST API (canonical/lxd ``shared/api/response.go``: the envelope
``{"type", "status", "status_code", "operation", "error_code", "error", "metadata"}``;
``shared/api/instance.go`` and ``instance_state.go``: instances with ``status``,
``status_code``, ``type``, ``location``, and ``PUT /1.0/instances/<name>/state`` taking
``{"action", "timeout", "force", "stateful"}`` and answering an async operation
(``shared/api/operation.go``) readable at ``/1.0/operations/<id>`` and ``.../wait``).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

STATUS_CODES = {"Running": 103, "Stopped": 102, "Frozen": 110, "Error": 400}
ACTIONS = {
    "start": ("Running", "Starting instance"),
    "stop": ("Stopped", "Stopping instance"),
    "restart": ("Running", "Restarting instance"),
    "freeze": ("Frozen", "Freezing instance"),
    "unfreeze": ("Running", "Unfreezing instance"),
}


@dataclasses.dataclass
class Instance:
    """One instance of the simulated cluster."""

    name: str
    status: str = "Running"
    type: str = "container"
    location: str = "member-1"

    def view(self) -> dict[str, Any]:
        """The instance as ``GET /1.0/instances/<name>`` shows it."""
        return {
            "name": self.name,
            "status": self.status,
            "status_code": STATUS_CODES[self.status],
            "type": self.type,
            "location": self.location,
            "project": "default",
        }


def _now() -> str:
    return datetime.now(UTC).isoformat()


def sync(metadata: Any, status: int = 200) -> tuple[int, bytes]:
    """A synchronous LXD answer."""
    body = {
        "type": "sync",
        "status": "Success",
        "status_code": 200,
        "operation": "",
        "error_code": 0,
        "error": "",
        "metadata": metadata,
    }
    return status, json.dumps(body).encode()


def error(status: int, message: str) -> tuple[int, bytes]:
    """An LXD error answer (the daemon passes it on with its status and body)."""
    body = {"type": "error", "status": "", "status_code": 0, "operation": "", "error_code": status}
    body.update({"error": message, "metadata": None})
    return status, json.dumps(body).encode()


class InMemoryLXD:
    """Instances and operations, answering ``(status, body)`` to ``(method, path, body)``."""

    def __init__(self, instances: list[Instance] | None = None) -> None:
        self.instances = {i.name: i for i in instances or []}
        self.operations: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # what reached LXD, for tests

    @classmethod
    def sample(cls, name: str, count: int = 3) -> InMemoryLXD:
        """A few instances spread over three members."""
        kinds = ("container", "virtual-machine")
        return cls(
            [
                Instance(
                    f"{name}-i{n}",
                    status="Running" if n % 3 else "Stopped",
                    type=kinds[n % 2],
                    location=f"member-{n % 3 + 1}",
                )
                for n in range(count)
            ]
        )

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """Answer one API call."""
        self.requests.append((method, path))
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        segments = [s for s in parts.path.split("/") if s][1:]  # after "1.0"
        if not segments:
            return sync({"api_version": "1.0", "auth": "trusted", "environment": {}})
        if segments == ["instances"] and method == "GET":
            if query.get("recursion", ["0"])[0] != "0":
                return sync([i.view() for i in self.instances.values()])
            return sync([f"/1.0/instances/{n}" for n in self.instances])
        if len(segments) >= 2 and segments[0] == "instances":
            instance = self.instances.get(segments[1])
            if instance is None:
                return error(404, "Instance not found")
            if len(segments) == 2 and method == "GET":
                return sync(instance.view())
            if segments[2:] == ["state"] and method == "PUT":
                return self._change_state(instance, body)
        if len(segments) in (2, 3) and segments[0] == "operations" and method == "GET":
            operation = self.operations.get(segments[1])
            if operation is None or segments[2:] not in ([], ["wait"]):
                return error(404, "Operation not found")
            return sync(operation)
        return error(404, "not found")

    def _change_state(self, instance: Instance, body: bytes) -> tuple[int, bytes]:
        try:
            request = json.loads(body or b"{}")
            action = request["action"]
            new_status, description = ACTIONS[action]
        except (ValueError, KeyError, TypeError):
            return error(400, "Unknown action")
        instance.status = new_status
        operation_id = str(uuid.uuid4())
        operation = {
            "id": operation_id,
            "class": "task",
            "description": description,
            "created_at": _now(),
            "updated_at": _now(),
            "status": "Success",
            "status_code": 200,
            "resources": {"instances": [f"/1.0/instances/{instance.name}"]},
            "metadata": None,
            "may_cancel": False,
            "err": "",
            "location": instance.location,
        }
        self.operations[operation_id] = operation
        envelope = {
            "type": "async",
            "status": "Operation created",
            "status_code": 100,
            "operation": f"/1.0/operations/{operation_id}",
            "error_code": 0,
            "error": "",
            "metadata": {**operation, "status": "Running", "status_code": 103},
        }
        return 202, json.dumps(envelope).encode()
