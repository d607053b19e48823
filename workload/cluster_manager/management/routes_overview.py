"""/1.0/overview: fleet aggregates for the overview page, in one call."""

from __future__ import annotations

from aiohttp import web

from cluster_manager.cluster_listing import ClusterFilter
from cluster_manager.db import POOL
from cluster_manager.envelope import sync_response
from cluster_manager.management.keys import SETTINGS
from cluster_manager.management.operations import READ_ERRORS, documented
from cluster_manager.management.requests import query_model
from cluster_manager.overview import MAX_SUMMARY_AGE, Overview, fleet_overview

routes = web.RouteTableDef()


@routes.get("/1.0/overview")
@documented(query=ClusterFilter, response=Overview, errors=(400, *READ_ERRORS))
async def overview(request: web.Request) -> web.Response:
    """Fleet aggregates in one call, for the clusters the list's filters select (default all).

    Figures are at most a few seconds old (``computed_at``, ``age_seconds``).
    """
    fleet_filter = query_model(request.query, ClusterFilter)
    return sync_response(
        await fleet_overview(
            request.app[POOL], request.app[SETTINGS], fleet_filter, max_age=MAX_SUMMARY_AGE
        )
    )
