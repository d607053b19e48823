"""/1.0/remote-cluster: list, show, change and remove enrolled clusters."""

from __future__ import annotations

from aiohttp import web

from cluster_manager import cluster_listing, clusters
from cluster_manager.db import POOL
from cluster_manager.envelope import sync_response
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.requests import json_body

routes = web.RouteTableDef()


@routes.get("/1.0/remote-cluster")
async def list_clusters(request: web.Request) -> web.Response:
    """One page of clusters with health and warnings, filtered and sorted."""
    query = cluster_listing.ClusterQuery.from_params(request.query)
    page = await cluster_listing.list_cluster_page(request.app[POOL], request.app[SETTINGS], query)
    return sync_response(page)


@routes.get("/1.0/remote-cluster/{name}")
async def get_cluster(request: web.Request) -> web.Response:
    """One cluster with its latest heartbeat, health and warnings."""
    view = await cluster_listing.get_cluster_view(
        request.app[POOL], request.app[SETTINGS], request.match_info["name"]
    )
    return sync_response(view)


@routes.patch("/1.0/remote-cluster/{name}")
async def patch_cluster(request: web.Request) -> web.Response:
    """Change the description or thresholds; answers with the changed cluster."""
    name = request.match_info["name"]
    changes = await json_body(request, clusters.EDITABLE_FIELDS)
    pool = request.app[POOL]
    await clusters.update_cluster(pool, name, changes)
    return sync_response(await cluster_listing.get_cluster_view(pool, request.app[SETTINGS], name))


@routes.delete("/1.0/remote-cluster/{name}")
async def delete_cluster(request: web.Request) -> web.Response:
    """Remove a cluster: every unit refuses its certificate from now on."""
    await clusters.remove_cluster(request.app[POOL], request.match_info["name"])
    return sync_response(None)
