"""A cluster's instances, members and warnings over its tunnel (see cluster_manager.instances).

Reads need the viewer role, instance state changes the operator role, member evacuation and
restore the admin role. Every change is in the audit log (as the manager call and as the
calls made to the cluster's LXD).
"""

from __future__ import annotations

import re

from aiohttp import web

from cluster_manager import fleet_instances, instances
from cluster_manager.db import POOL
from cluster_manager.envelope import sync_response
from cluster_manager.errors import BadRequest
from cluster_manager.fleet_instances import (
    BulkStateChange,
    BulkStateResult,
    FleetPage,
    FleetQuery,
)
from cluster_manager.instances import (
    LXD_NAME_REGEX,
    LXD_NAME_WORDS,
    InstanceList,
    InstancesQuery,
    MemberChange,
    MemberList,
    MemberResult,
    StateChange,
    StateResult,
    WarningList,
)
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.operations import READ_ERRORS, WRITE_ERRORS, documented
from cluster_manager.management.requests import json_body, query_model
from cluster_manager.management.routes_audit import actor_of
from cluster_manager.remote_lxd import Remote
from cluster_manager.tunnel import TUNNELS

routes = web.RouteTableDef()
_LXD_NAME = re.compile(LXD_NAME_REGEX)
LXD_NAME_SCHEMA = {"pattern": LXD_NAME_REGEX, "description": LXD_NAME_WORDS}
TUNNEL_ERRORS = (404, 429, 502, 503, 504)
TUNNEL_REASONS = {
    404: "no such cluster, or LXD knows no such instance or member",
    502: "the tunnel broke, or LXD failed",
    503: "the cluster's tunnel is not connected (the message names the command enabling it),"
    " or the database or audit log is unavailable",
}


def remote_of(request: web.Request) -> Remote:
    """The tunnels, database and settings a call to a cluster needs."""
    app = request.app
    return Remote(app[TUNNELS], app[POOL], app[SETTINGS])


def _lxd_name(request: web.Request, key: str) -> str:
    value = request.match_info[key]
    if not _LXD_NAME.fullmatch(value):
        raise BadRequest(f"{key}: expected {LXD_NAME_WORDS}")
    return value


@routes.get("/1.0/remote-cluster/{name}/instances")
@documented(
    query=InstancesQuery,
    response=InstanceList,
    errors=(400, *TUNNEL_ERRORS, *READ_ERRORS),
    reasons=TUNNEL_REASONS,
)
async def get_instances(request: web.Request) -> web.Response:
    """The cluster's instances: status, type, member, CPU and memory use, addresses."""
    query = query_model(request.query, InstancesQuery)
    return sync_response(
        await instances.list_instances(
            remote_of(request), actor_of(request), request.match_info["name"], query.project
        )
    )


@routes.put("/1.0/remote-cluster/{name}/instances/{instance}/state")
@documented(
    body=StateChange,
    response=StateResult,
    errors=(409, *TUNNEL_ERRORS, *WRITE_ERRORS),
    reasons=TUNNEL_REASONS,
    role="operator",
    path_schemas={"instance": LXD_NAME_SCHEMA},
)
async def put_instance_state(request: web.Request) -> web.Response:
    """Start, stop, restart, freeze or unfreeze an instance and wait for LXD to finish.

    The wait is bounded (operation_wait_timeout): a change still going on then is answered
    with result "running".
    """
    instance = _lxd_name(request, "instance")
    change = await json_body(request, StateChange)
    return sync_response(
        await instances.change_state(
            remote_of(request), actor_of(request), request.match_info["name"], instance, change
        )
    )


@routes.get("/1.0/remote-cluster/{name}/members")
@documented(response=MemberList, errors=(*TUNNEL_ERRORS, *READ_ERRORS), reasons=TUNNEL_REASONS)
async def get_members(request: web.Request) -> web.Response:
    """The cluster's members with their status and roles."""
    return sync_response(
        await instances.list_members(
            remote_of(request), actor_of(request), request.match_info["name"]
        )
    )


@routes.post("/1.0/remote-cluster/{name}/members/{member}/state")
@documented(
    body=MemberChange,
    response=MemberResult,
    errors=(409, *TUNNEL_ERRORS, *WRITE_ERRORS),
    reasons=TUNNEL_REASONS,
    role="admin",
    path_schemas={"member": LXD_NAME_SCHEMA},
)
async def post_member_state(request: web.Request) -> web.Response:
    """Evacuate a member (its instances move or stop) or restore it; wait for LXD."""
    member = _lxd_name(request, "member")
    change = await json_body(request, MemberChange)
    return sync_response(
        await instances.change_member(
            remote_of(request), actor_of(request), request.match_info["name"], member, change
        )
    )


@routes.get("/1.0/remote-cluster/{name}/warnings")
@documented(response=WarningList, errors=(*TUNNEL_ERRORS, *READ_ERRORS), reasons=TUNNEL_REASONS)
async def get_warnings(request: web.Request) -> web.Response:
    """The cluster's LXD warnings."""
    return sync_response(
        await instances.list_warnings(
            remote_of(request), actor_of(request), request.match_info["name"]
        )
    )


@routes.get("/1.0/instances")
@documented(query=FleetQuery, response=FleetPage, errors=(400, *READ_ERRORS))
async def search_fleet(request: web.Request) -> web.Response:
    """Instances across one page of connected clusters, by name, status, type and project.

    Clusters are asked a bounded number at a time, each within fleet_cluster_timeout; those
    that fail or time out are listed in unanswered. Page on with after=next_after.
    """
    query = query_model(request.query, FleetQuery)
    return sync_response(
        await fleet_instances.search(remote_of(request), actor_of(request), query)
    )


@routes.post("/1.0/instances/bulk/state")
@documented(body=BulkStateChange, response=BulkStateResult, errors=WRITE_ERRORS, role="operator")
async def bulk_state(request: web.Request) -> web.Response:
    """Start, stop, restart, freeze or unfreeze selected instances; a result for each."""
    change = await json_body(request, BulkStateChange)
    return sync_response(
        await fleet_instances.bulk_change_state(remote_of(request), actor_of(request), change)
    )
