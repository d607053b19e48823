"""A cluster's instances, members and warnings, read and changed through its tunnel.

The service functions the Management API, the CLI and the charm actions call. Shapes read from
LXD's answers are those of canonical/lxd ``shared/api`` (see :mod:`cluster_manager.fleet.lxd`
for file and line). Every call goes through :func:`cluster_manager.remote_lxd.call`, so changes
are in the audit log.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import msgspec

from cluster_manager.audit import Actor
from cluster_manager.errors import ApiError
from cluster_manager.remote_lxd import Remote, call, refusal_hint

LXD_NAME_REGEX = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
LXD_NAME_WORDS = "1-63 letters, digits, '_', '.' or '-', starting with a letter or digit"
LxdName = Annotated[str, msgspec.Meta(pattern=LXD_NAME_REGEX, description=LXD_NAME_WORDS)]
StateAction = Literal["start", "stop", "restart", "freeze", "unfreeze"]
MemberAction = Literal["evacuate", "restore"]
PASSED_ON = frozenset({400, 403, 404, 409})  # LXD refusals kept as they are; others are 502


class LxdRefused(ApiError):
    """LXD answered a call with an error (its status kept for 400/403/404/409, else 502)."""

    def __init__(
        self,
        cluster: str,
        status: int,
        envelope: dict[str, Any] | None,
        actor: Actor | None = None,
    ) -> None:
        reason = (envelope or {}).get("error") or "no LXD response"
        hint = refusal_hint(status, actor)
        super().__init__(
            f"cluster {cluster}: LXD answered {status}: {str(reason)[:300]}"
            + (f" ({hint})" if hint else "")
        )
        self.status = status if status in PASSED_ON else 502


class Instance(msgspec.Struct):
    """One instance as the inventory shows it."""

    name: str
    project: str
    type: Annotated[str, msgspec.Meta(description="container or virtual-machine")]
    status: Annotated[str, msgspec.Meta(description="Running, Stopped, Frozen, Error…")]
    location: Annotated[str, msgspec.Meta(description="the cluster member it runs on")]
    cpu_seconds: Annotated[
        float | None, msgspec.Meta(description="CPU time used, when LXD gives it")
    ] = None
    memory_bytes: Annotated[
        int | None, msgspec.Meta(description="memory in use, when LXD gives it")
    ] = None
    addresses: list[str] = []


class InstanceList(msgspec.Struct):
    """A cluster's instances."""

    cluster: str
    instances: list[Instance]


class InstancesQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Which project's instances (all projects when not given)."""

    project: LxdName | None = None


class StateChange(msgspec.Struct, forbid_unknown_fields=True):
    """A state change of one instance (LXD's InstanceStatePut)."""

    action: StateAction
    force: Annotated[bool, msgspec.Meta(description="stop or restart without waiting")] = False
    timeout: Annotated[
        int,
        msgspec.Meta(ge=-1, le=3600, description="seconds LXD waits for a clean stop; -1: ever"),
    ] = 30
    project: LxdName = "default"


class StateResult(msgspec.Struct):
    """How a change ended: success, failure, or still running when the wait ran out."""

    cluster: str
    instance: str
    project: str
    action: str
    result: Literal["success", "failure", "running"]
    error: str = ""
    operation: str = ""


class Member(msgspec.Struct):
    """A cluster member."""

    name: str
    status: Annotated[str, msgspec.Meta(description="Online, Evacuated, Offline…")]
    message: str
    roles: list[str]
    url: str


class MemberList(msgspec.Struct):
    """A cluster's members."""

    cluster: str
    members: list[Member]


class MemberChange(msgspec.Struct, forbid_unknown_fields=True):
    """Evacuate a member (its instances move or stop) or restore it."""

    action: MemberAction


class MemberResult(msgspec.Struct):
    """How a member change ended."""

    cluster: str
    member: str
    action: str
    result: Literal["success", "failure", "running"]
    error: str = ""
    operation: str = ""


class LxdWarning(msgspec.Struct):
    """One LXD warning."""

    uuid: str
    type: str
    severity: str
    status: str
    count: int
    last_message: str
    last_seen_at: str
    location: str
    project: str


class WarningList(msgspec.Struct):
    """A cluster's LXD warnings."""

    cluster: str
    warnings: list[LxdWarning]


def _metadata(
    cluster: str, status: int, envelope: dict[str, Any] | None, actor: Actor | None = None
) -> Any:
    if envelope is None or status >= 400 or envelope.get("type") == "error":
        raise LxdRefused(cluster, status, envelope, actor)
    return envelope.get("metadata")


def _text(value: Any) -> str:
    return value[:512] if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _addresses(state: dict[str, Any]) -> list[str]:
    found = []
    network = state.get("network")
    for name, device in network.items() if isinstance(network, dict) else ():
        if name == "lo" or not isinstance(device, dict):
            continue
        for entry in device.get("addresses") or ():
            if isinstance(entry, dict) and entry.get("scope") == "global":
                found.append(_text(entry.get("address")))
    return [a for a in found if a][:64]


def instance_of(item: dict[str, Any]) -> Instance:
    """An inventory entry from LXD's InstanceFull (recursion=2) or Instance (recursion=1)."""
    state = item.get("state") if isinstance(item.get("state"), dict) else None
    cpu = memory = None
    addresses: list[str] = []
    if state is not None:
        usage = (state.get("cpu") or {}).get("usage")
        cpu = _int(usage) / 1e9 if isinstance(usage, int) and usage > 0 else None
        used = (state.get("memory") or {}).get("usage")
        memory = used if isinstance(used, int) and used > 0 else None
        addresses = _addresses(state)
    return Instance(
        name=_text(item.get("name")),
        project=_text(item.get("project")) or "default",
        type=_text(item.get("type")),
        status=_text(item.get("status")),
        location=_text(item.get("location")),
        cpu_seconds=cpu,
        memory_bytes=memory,
        addresses=addresses,
    )


async def list_instances(
    remote: Remote, actor: Actor, cluster: str, project: str | None = None
) -> InstanceList:
    """The cluster's instances with their state (one LXD call: recursion=2)."""
    query = {"recursion": "2", **({"project": project} if project else {"all-projects": "true"})}
    status, envelope = await call(
        remote, actor, cluster, "GET", "/1.0/instances?" + urlencode(query)
    )
    items = _metadata(cluster, status, envelope, actor)
    if not isinstance(items, list):
        raise LxdRefused(cluster, 502, {"error": "instances answer is not a list"})
    return InstanceList(
        cluster=cluster, instances=[instance_of(i) for i in items if isinstance(i, dict)]
    )


def _wait_seconds(remote: Remote) -> int:
    """How long one wait may ask LXD for: inside the tunnel's own timeout."""
    limit = int(remote.settings.tunnel_request_timeout) - 2
    return max(1, min(remote.settings.operation_wait_timeout, limit))


async def _wait(
    remote: Remote, actor: Actor, cluster: str, envelope: dict[str, Any]
) -> tuple[str, str, str]:
    """Wait for an async answer's operation: (result, error, operation path)."""
    operation = envelope.get("operation")
    if envelope.get("type") != "async" or not isinstance(operation, str):
        return "success", "", ""
    if not operation.startswith("/1.0/operations/") or len(operation) > 200:
        return "failure", "LXD named an unexpected operation", ""
    path = f"{operation}/wait?timeout={_wait_seconds(remote)}"
    status, waited = await call(remote, actor, cluster, "GET", path)
    metadata = _metadata(cluster, status, waited, actor)
    state = metadata.get("status") if isinstance(metadata, dict) else None
    if state == "Success":
        return "success", "", operation
    if state in ("Failure", "Cancelled"):
        return "failure", _text(metadata.get("err")) or str(state), operation
    return "running", "", operation


async def change_state(
    remote: Remote, actor: Actor, cluster: str, instance: str, change: StateChange
) -> StateResult:
    """Start, stop, restart, freeze or unfreeze an instance; wait for LXD's operation."""
    body = json.dumps(
        {
            "action": change.action,
            "timeout": change.timeout,
            "force": change.force,
            "stateful": False,
        }
    ).encode()
    path = f"/1.0/instances/{quote(instance, safe='')}/state?" + urlencode(
        {"project": change.project}
    )
    status, envelope = await call(remote, actor, cluster, "PUT", path, body)
    _metadata(cluster, status, envelope, actor)
    assert envelope is not None
    result, error, operation = await _wait(remote, actor, cluster, envelope)
    return StateResult(
        cluster=cluster,
        instance=instance,
        project=change.project,
        action=change.action,
        result=result,  # type: ignore[arg-type]
        error=error,
        operation=operation,
    )


async def list_members(remote: Remote, actor: Actor, cluster: str) -> MemberList:
    """The cluster's members with status and roles."""
    status, envelope = await call(
        remote, actor, cluster, "GET", "/1.0/cluster/members?recursion=1"
    )
    items = _metadata(cluster, status, envelope, actor)
    members = [
        Member(
            name=_text(m.get("server_name")),
            status=_text(m.get("status")),
            message=_text(m.get("message")),
            roles=[_text(r) for r in m.get("roles") or () if isinstance(r, str)][:32],
            url=_text(m.get("url")),
        )
        for m in (items if isinstance(items, list) else ())
        if isinstance(m, dict)
    ]
    return MemberList(cluster=cluster, members=members)


async def change_member(
    remote: Remote, actor: Actor, cluster: str, member: str, change: MemberChange
) -> MemberResult:
    """Evacuate or restore a member; wait for LXD's operation."""
    body = json.dumps({"action": change.action, "mode": "", "force": False}).encode()
    path = f"/1.0/cluster/members/{quote(member, safe='')}/state"
    status, envelope = await call(remote, actor, cluster, "POST", path, body)
    _metadata(cluster, status, envelope, actor)
    assert envelope is not None
    result, error, operation = await _wait(remote, actor, cluster, envelope)
    return MemberResult(
        cluster=cluster,
        member=member,
        action=change.action,
        result=result,  # type: ignore[arg-type]
        error=error,
        operation=operation,
    )


async def list_warnings(remote: Remote, actor: Actor, cluster: str) -> WarningList:
    """The cluster's LXD warnings."""
    status, envelope = await call(remote, actor, cluster, "GET", "/1.0/warnings?recursion=1")
    items = _metadata(cluster, status, envelope, actor)
    warnings = [
        LxdWarning(
            uuid=_text(w.get("uuid")),
            type=_text(w.get("type")),
            severity=_text(w.get("severity")),
            status=_text(w.get("status")),
            count=_int(w.get("count")),
            last_message=_text(w.get("last_message")),
            last_seen_at=_text(w.get("last_seen_at")),
            location=_text(w.get("location")),
            project=_text(w.get("project")),
        )
        for w in (items if isinstance(items, list) else ())
        if isinstance(w, dict)
    ]
    return WarningList(cluster=cluster, warnings=warnings)
