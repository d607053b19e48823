"""/1.0/remote-cluster: list, show, change and remove enrolled clusters, one or many at once."""

from __future__ import annotations

from aiohttp import web

from cluster_manager import cluster_bulk, cluster_listing, clusters
from cluster_manager.cluster_bulk import BulkRemove, BulkResult, BulkThresholds
from cluster_manager.cluster_listing import Cluster, ClusterPage, ClusterQuery
from cluster_manager.clusters import ClusterChanges
from cluster_manager.db import POOL
from cluster_manager.envelope import sync_response
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.operations import READ_ERRORS, WRITE_ERRORS, documented
from cluster_manager.management.requests import json_body, query_model

routes = web.RouteTableDef()


@routes.get("/1.0/remote-cluster")
@documented(query=ClusterQuery, response=ClusterPage, errors=(400, *READ_ERRORS))
async def list_clusters(request: web.Request) -> web.Response:
    """One page of enrolled clusters with health and warnings, filtered and sorted."""
    query = query_model(request.query, ClusterQuery)
    page = await cluster_listing.list_cluster_page(request.app[POOL], request.app[SETTINGS], query)
    return sync_response(page)


@routes.get("/1.0/remote-cluster/{name}")
@documented(response=Cluster, errors=(404, *READ_ERRORS))
async def get_cluster(request: web.Request) -> web.Response:
    """One cluster with its latest heartbeat, health and warnings."""
    view = await cluster_listing.get_cluster_view(
        request.app[POOL], request.app[SETTINGS], request.match_info["name"]
    )
    return sync_response(view)


@routes.patch("/1.0/remote-cluster/{name}")
@documented(body=ClusterChanges, response=Cluster, errors=(404, *WRITE_ERRORS))
async def patch_cluster(request: web.Request) -> web.Response:
    """Change the description or thresholds (all or nothing); answers with the cluster."""
    name = request.match_info["name"]
    changes = await json_body(request, ClusterChanges)
    pool = request.app[POOL]
    await clusters.update_cluster(pool, name, changes)
    return sync_response(await cluster_listing.get_cluster_view(pool, request.app[SETTINGS], name))


@routes.delete("/1.0/remote-cluster/{name}")
@documented(errors=(404, *WRITE_ERRORS))
async def delete_cluster(request: web.Request) -> web.Response:
    """Remove a cluster: every unit refuses its certificate from now on."""
    await clusters.remove_cluster(request.app[POOL], request.match_info["name"])
    return sync_response(None)


@routes.post("/1.0/remote-cluster/bulk/remove")
@documented(body=BulkRemove, response=BulkResult, errors=WRITE_ERRORS)
async def bulk_remove(request: web.Request) -> web.Response:
    """Remove up to 500 clusters; answers each name's result (ok, not_found, error)."""
    wanted = await json_body(request, BulkRemove)
    return sync_response(await cluster_bulk.remove_clusters(request.app[POOL], wanted))


@routes.post("/1.0/remote-cluster/bulk/thresholds")
@documented(body=BulkThresholds, response=BulkResult, errors=WRITE_ERRORS)
async def bulk_thresholds(request: web.Request) -> web.Response:
    """Set thresholds of up to 500 clusters (null: fleet default); answers each name's result."""
    wanted = await json_body(request, BulkThresholds)
    return sync_response(await cluster_bulk.set_thresholds(request.app[POOL], wanted))
