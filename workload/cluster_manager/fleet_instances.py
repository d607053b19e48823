"""Fleet-wide instance search and bulk state changes, fanned out over clusters' tunnels.

A search asks one page of connected clusters (name order, ``after`` the previous page's last
one) at most ``fleet_fanout_concurrency`` at a time, each within ``fleet_cluster_timeout``;
clusters that fail or do not answer in time are listed, not waited for. A fleet of 10,000
clusters is thus read in pages, never in one 10,000-way request held in memory.

A bulk change runs each item's state change (:func:`cluster_manager.instances.change_state`)
with the same cap overall and a few at a time per cluster, and answers every item.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Annotated, Any, Literal

import msgspec

from cluster_manager.audit import Actor
from cluster_manager.errors import ApiError
from cluster_manager.fields import Name
from cluster_manager.instances import (
    Instance,
    LxdName,
    StateAction,
    StateChange,
    change_state,
    list_instances,
)
from cluster_manager.remote_lxd import Remote
from cluster_manager.tunnel import store

MAX_CLUSTERS_PER_PAGE = 500
MAX_INSTANCES_PER_PAGE = 20_000
MAX_BULK_ITEMS = 1000
PER_CLUSTER_AT_ONCE = 4  # state changes in flight on one tunnel (its bound is 16 by default)


class FleetQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Filters of the fleet instance search, and its page of clusters."""

    name: Annotated[
        str, msgspec.Meta(max_length=63, pattern=r"^[A-Za-z0-9_.-]*$", description="part of")
    ] = ""
    status: Annotated[
        str,
        msgspec.Meta(max_length=32, pattern=r"^[A-Za-z]*$", description="e.g. Running, Stopped"),
    ] = ""
    type: Literal["", "container", "virtual-machine"] = ""
    project: LxdName | None = None
    after: Annotated[Name | None, msgspec.Meta(description="the previous page's next_after")] = (
        None
    )
    clusters: Annotated[
        int, msgspec.Meta(ge=1, le=MAX_CLUSTERS_PER_PAGE, description="clusters per page")
    ] = 100


class FleetInstance(Instance):
    """An instance and the cluster holding it."""

    cluster: str = ""


class Unanswered(msgspec.Struct):
    """A cluster that did not answer: why (HTTP status and message)."""

    cluster: str
    status: int
    error: str


class FleetPage(msgspec.Struct):
    """Matching instances of one page of connected clusters."""

    instances: list[FleetInstance]
    clusters_asked: list[str]
    unanswered: list[Unanswered]
    next_after: Annotated[
        str | None, msgspec.Meta(description="pass as after= for the next page; null: last")
    ]
    truncated: Annotated[
        bool, msgspec.Meta(description="more instances matched than one page holds")
    ] = False


class InstanceRef(msgspec.Struct, forbid_unknown_fields=True):
    """One selected instance."""

    cluster: Name
    instance: LxdName
    project: LxdName = "default"


class BulkStateChange(msgspec.Struct, forbid_unknown_fields=True):
    """One state change applied to each selected instance."""

    action: StateAction
    instances: Annotated[list[InstanceRef], msgspec.Meta(min_length=1, max_length=MAX_BULK_ITEMS)]
    force: bool = False
    timeout: Annotated[int, msgspec.Meta(ge=-1, le=3600)] = 30


class BulkStateItem(msgspec.Struct):
    """How one item ended: success, failure (LXD's operation failed), running or error."""

    cluster: str
    instance: str
    project: str
    result: Literal["success", "failure", "running", "error"]
    status: Annotated[int | None, msgspec.Meta(description="HTTP status of an error")] = None
    error: str = ""


class BulkStateResult(msgspec.Struct):
    """Every item's result, in the order given."""

    results: list[BulkStateItem]
    succeeded: int
    failed: int


def _matches(instance: Instance, query: FleetQuery) -> bool:
    return (
        (not query.name or query.name.lower() in instance.name.lower())
        and (not query.status or query.status.lower() == instance.status.lower())
        and (not query.type or query.type == instance.type)
    )


async def search(remote: Remote, actor: Actor, query: FleetQuery) -> FleetPage:
    """One page of the fleet's matching instances; clusters that did not answer listed."""
    names = await store.connected_clusters(
        remote.pool, query.after, query.clusters + 1, remote.settings.tunnel_liveness_interval
    )
    more = len(names) > query.clusters
    names = names[: query.clusters]
    limit = asyncio.Semaphore(remote.settings.fleet_fanout_concurrency)
    timeout = remote.settings.fleet_cluster_timeout

    async def ask(cluster: str) -> list[Instance] | Unanswered:
        async with limit:
            try:
                async with asyncio.timeout(timeout):
                    found = await list_instances(remote, actor, cluster, query.project)
            except ApiError as error:
                return Unanswered(cluster=cluster, status=error.status, error=error.message)
            except TimeoutError:
                return Unanswered(
                    cluster=cluster, status=504, error=f"no answer within {timeout:g} s"
                )
            return [i for i in found.instances if _matches(i, query)]

    answers = await asyncio.gather(*(ask(n) for n in names))
    instances: list[FleetInstance] = []
    unanswered: list[Unanswered] = []
    truncated = False
    for cluster, answer in zip(names, answers, strict=True):
        if isinstance(answer, Unanswered):
            unanswered.append(answer)
            continue
        for item in answer:
            if len(instances) >= MAX_INSTANCES_PER_PAGE:
                truncated = True
                break
            instances.append(FleetInstance(**msgspec.structs.asdict(item), cluster=cluster))
    return FleetPage(
        instances=instances,
        clusters_asked=names,
        unanswered=unanswered,
        next_after=names[-1] if more else None,
        truncated=truncated,
    )


async def bulk_change_state(
    remote: Remote, actor: Actor, request: BulkStateChange
) -> BulkStateResult:
    """Apply the change to every selected instance; a failing one does not stop the others."""
    overall = asyncio.Semaphore(remote.settings.fleet_fanout_concurrency)
    per_cluster: dict[str, asyncio.Semaphore] = collections.defaultdict(
        lambda: asyncio.Semaphore(PER_CLUSTER_AT_ONCE)
    )
    change = {"action": request.action, "force": request.force, "timeout": request.timeout}

    async def run(ref: InstanceRef) -> BulkStateItem:
        def item(result: Literal["success", "failure", "running", "error"], **more: Any):
            return BulkStateItem(
                cluster=ref.cluster,
                instance=ref.instance,
                project=ref.project,
                result=result,
                **more,
            )

        async with overall, per_cluster[ref.cluster]:
            try:
                result = await change_state(
                    remote,
                    actor,
                    ref.cluster,
                    ref.instance,
                    StateChange(**change, project=ref.project),
                )
            except ApiError as error:
                return item("error", status=error.status, error=error.message)
        return item(result.result, error=result.error)

    unique = list({(r.cluster, r.project, r.instance): r for r in request.instances}.values())
    results = await asyncio.gather(*(run(ref) for ref in unique))
    succeeded = sum(r.result == "success" for r in results)
    return BulkStateResult(
        results=list(results), succeeded=succeeded, failed=len(results) - succeeded
    )
