"""A small in-memory LXD API, what a simulated cluster answers through its reverse tunnel.

Shapes follow LXD's REST API (canonical/lxd ``shared/api/response.go``: the envelope
``{"type", "status", "status_code", "operation", "error_code", "error", "metadata"}``;
``shared/api/instance.go`` and ``instance_state.go``: instances with ``status``,
``status_code``, ``type``, ``location``, and ``PUT /1.0/instances/<name>/state`` taking
``{"action", "timeout", "force", "stateful"}`` and answering an async operation
(``shared/api/operation.go``) readable at ``/1.0/operations/<id>`` and ``.../wait``).

Read at canonical/lxd a83edf2a79e4346f6e29e3dd3b97be4f5cf3ea05:

- ``shared/api/instance.go`` lines 253-287 (Instance: name, status, status_code, location,
  type, project) and line 334 (InstanceFull.state, given by ``?recursion=2``,
  ``lxd/instances_get.go`` lines 158-187, with ``all-projects`` line 183);
- ``shared/api/instance_state.go`` lines 11-19 (InstanceStatePut: action, timeout, force),
  34-58 (InstanceState: status, status_code, memory, network, cpu), 69 (cpu usage, ns), 86
  (memory usage, bytes), 125 (network addresses), 160-172 (address: family, address, scope);
- ``shared/api/cluster.go`` lines 174-202 (ClusterMember: server_name, url, database, status,
  message, roles) and 326-340 (ClusterMemberStatePost: action evacuate/restore, mode, force),
  served at ``POST /1.0/cluster/members/{name}/state`` (``lxd/api_cluster_member.go`` line
  1297); member status Online, Evacuated or Offline (``lxd/db/node.go`` lines 173-180);
- LXD serves its web UI at ``/ui`` on the API's own origin (LXD documentation, "How to
  access the LXD web UI"); the UI calls ``/1.0/...`` on that origin and opens WebSockets
  there (canonical/lxd-ui ``README.md``: its development proxy sends ``path_beg /1.0`` and
  WebSocket upgrades to LXD, everything else to the UI's files). :data:`UI_FILES` is a small
  stand-in whose script reads ``/1.0/instances`` and stops an instance the same way;
- ``shared/api/warning.go`` lines 15-55 (Warning: uuid, location, project, type, count,
  last_seen_at, last_message, severity, status, entity_url), ``GET /1.0/warnings?recursion=1``
  (``lxd/warnings.go`` line 114).
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
    """One instance of the simulated cluster (``broken``: its state changes fail)."""

    name: str
    status: str = "Running"
    type: str = "container"
    location: str = "member-1"
    project: str = "default"
    cpu_usage_ns: int = 1_500_000_000
    memory_usage_bytes: int = 256 * 1024 * 1024
    addresses: tuple[str, ...] = ("10.0.0.2",)
    broken: bool = False

    def view(self) -> dict[str, Any]:
        """The instance as ``GET /1.0/instances/<name>`` shows it."""
        return {
            "name": self.name,
            "status": self.status,
            "status_code": STATUS_CODES[self.status],
            "type": self.type,
            "location": self.location,
            "project": self.project,
        }

    def state(self) -> dict[str, Any]:
        """``GET /1.0/instances/<name>/state``: usage and addresses only while running."""
        running = self.status == "Running"
        addresses = [
            {
                "family": "inet6" if ":" in address else "inet",
                "address": address,
                "netmask": "64" if ":" in address else "24",
                "scope": "global",
            }
            for address in (self.addresses if running else ())
        ]
        return {
            "status": self.status,
            "status_code": STATUS_CODES[self.status],
            "disk": {},
            "memory": {"usage": self.memory_usage_bytes if running else 0, "total": 0},
            "network": {"eth0": {"addresses": addresses, "state": "up", "type": "broadcast"}},
            "pid": 1234 if running else 0,
            "processes": 12 if running else 0,
            "cpu": {"usage": self.cpu_usage_ns if running else 0},
        }


@dataclasses.dataclass
class Member:
    """One member of the simulated cluster."""

    name: str
    status: str = "Online"
    roles: tuple[str, ...] = ("database",)

    def view(self) -> dict[str, Any]:
        """The member as ``GET /1.0/cluster/members/<name>`` shows it."""
        return {
            "server_name": self.name,
            "url": f"https://{self.name}:8443",
            "database": "database" in self.roles,
            "status": self.status,
            "message": "Fully operational" if self.status == "Online" else self.status,
            "architecture": "x86_64",
            "roles": list(self.roles),
            "failure_domain": "default",
            "description": "",
            "config": {},
            "groups": ["default"],
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


UI_INDEX = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>LXD UI (simulated)</title>
<link rel="stylesheet" href="/ui/assets/ui.css">
<script type="module" src="/ui/assets/index.js"></script>
</head>
<body>
<h1>LXD UI</h1>
<p id="server">Connecting</p>
<p id="status" role="status">Loading instances</p>
<ul id="instances" aria-label="Instances"></ul>
</body>
</html>
"""
# Absolute /1.0 paths as the LXD UI writes them; one is computed at run time (no literal).
UI_SCRIPT = b"""const list = document.getElementById("instances");
const status = document.getElementById("status");

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const envelope = await response.json();
  if (!response.ok) throw new Error(envelope.error || response.statusText);
  return envelope;
}

async function show() {
  const envelope = await api("GET", "/1.0/instances?recursion=1");
  list.replaceChildren();
  for (const instance of envelope.metadata) {
    const item = document.createElement("li");
    item.dataset.name = instance.name;
    item.textContent = instance.name + ": " + instance.status;
    const stop = document.createElement("button");
    stop.textContent = "Stop " + instance.name;
    stop.addEventListener("click", async () => {
      try {
        await api("PUT", "/1.0/instances/" + encodeURIComponent(instance.name) + "/state",
          { action: "stop", timeout: 30 });
        await show();
      } catch (error) {
        status.textContent = "Error: " + error.message;
      }
    });
    item.append(" ", stop);
    list.append(item);
  }
  status.textContent = envelope.metadata.length + " instances";
}

const root = ["", "1.0"].join("/");
api("GET", root).then((envelope) => {
  document.getElementById("server").textContent = "API " + envelope.metadata.api_version;
});
show().catch((error) => { status.textContent = "Error: " + error.message; });
"""
UI_FILES: dict[str, tuple[bytes, str]] = {
    "index.html": (UI_INDEX, "text/html; charset=utf-8"),
    "assets/index.js": (UI_SCRIPT, "text/javascript; charset=utf-8"),
    "assets/ui.css": (b"body { font-family: sans-serif; }\n", "text/css; charset=utf-8"),
}


def ui_file(path: str) -> tuple[int, bytes, str]:
    """``GET /ui/<path>`` as LXD serves it: the file, or index.html for an unknown page."""
    name = path.split("?", 1)[0].removeprefix("/ui").lstrip("/") or "index.html"
    body, content_type = UI_FILES.get(name, UI_FILES["index.html"])
    return 200, body, content_type


class InMemoryLXD:
    """Instances and operations, answering ``(status, body)`` to ``(method, path, body)``."""

    def __init__(
        self,
        instances: list[Instance] | None = None,
        members: list[Member] | None = None,
        warnings: list[dict[str, Any]] | None = None,
    ) -> None:
        self.instances = {i.name: i for i in instances or []}
        names = sorted({i.location for i in self.instances.values()}) or ["member-1"]
        self.members = {m.name: m for m in members or [Member(n) for n in names]}
        self.warnings = warnings or []
        self.operations: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # what reached LXD, for tests
        self.state_requests: list[dict[str, Any]] = []  # bodies of state changes, for tests

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
            recursion = query.get("recursion", ["0"])[0]
            project = query.get("project", ["default"])[0]
            every = query.get("all-projects", ["false"])[0] == "true"
            chosen = [i for i in self.instances.values() if every or i.project == project]
            if recursion == "2":
                return sync([{**i.view(), "state": i.state()} for i in chosen])
            if recursion != "0":
                return sync([i.view() for i in chosen])
            return sync([f"/1.0/instances/{i.name}" for i in chosen])
        if segments == ["cluster", "members"] and method == "GET":
            if query.get("recursion", ["0"])[0] != "0":
                return sync([m.view() for m in self.members.values()])
            return sync([f"/1.0/cluster/members/{n}" for n in self.members])
        if segments[:2] == ["cluster", "members"] and len(segments) >= 3:
            member = self.members.get(segments[2])
            if member is None:
                return error(404, "Cluster member not found")
            if len(segments) == 3 and method == "GET":
                return sync(member.view())
            if segments[3:] == ["state"] and method == "POST":
                return self._change_member(member, body)
        if segments == ["warnings"] and method == "GET":
            if query.get("recursion", ["0"])[0] != "0":
                return sync(self.warnings)
            return sync([f"/1.0/warnings/{w['uuid']}" for w in self.warnings])
        if len(segments) >= 2 and segments[0] == "instances":
            instance = self.instances.get(segments[1])
            if instance is None:
                return error(404, "Instance not found")
            if len(segments) == 2 and method == "GET":
                return sync(instance.view())
            if segments[2:] == ["state"] and method == "GET":
                return sync(instance.state())
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
        self.state_requests.append(request)
        if instance.broken:
            return self._operation(
                description,
                f"/1.0/instances/{instance.name}",
                instance.location,
                f"Failed to {action} instance {instance.name!r}",
            )
        instance.status = new_status
        return self._operation(description, f"/1.0/instances/{instance.name}", instance.location)

    def _change_member(self, member: Member, body: bytes) -> tuple[int, bytes]:
        try:
            action = json.loads(body or b"{}")["action"]
        except (ValueError, KeyError, TypeError):
            return error(400, "Unknown action")
        if action not in ("evacuate", "restore"):
            return error(400, "Unknown action")
        member.status = "Evacuated" if action == "evacuate" else "Online"
        if action == "evacuate":
            others = [m for m in self.members if m != member.name] or [member.name]
            for n, instance in enumerate(
                i for i in self.instances.values() if i.location == member.name
            ):
                instance.location = others[n % len(others)]
        description = "Evacuating cluster member" if action == "evacuate" else "Restoring member"
        return self._operation(description, f"/1.0/cluster/members/{member.name}", member.name)

    def _operation(
        self, description: str, resource: str, location: str, failure: str = ""
    ) -> tuple[int, bytes]:
        operation_id = str(uuid.uuid4())
        kind = resource.split("/")[2] if resource.count("/") >= 2 else "instances"
        operation = {
            "id": operation_id,
            "class": "task",
            "description": description,
            "created_at": _now(),
            "updated_at": _now(),
            "status": "Failure" if failure else "Success",
            "status_code": 400 if failure else 200,
            "resources": {kind: [resource]},
            "metadata": None,
            "may_cancel": False,
            "err": failure,
            "location": location,
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
