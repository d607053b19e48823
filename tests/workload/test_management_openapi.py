"""The OpenAPI document and the Management API's routes describe the same API."""

from __future__ import annotations

import re

from aiohttp import web
from cluster_manager import clusters
from cluster_manager.management import openapi, routes_tokens
from cluster_manager.management.app import create_app
from cluster_manager.management.static_routes import ROUTE_PREFIX as UI_ROUTE_PREFIX

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def routed(app: web.Application) -> set[tuple[str, str]]:
    """(path, method) of every API route.

    Left out: HEAD that aiohttp adds beside GET, and the web UI's pages and files.
    """
    found = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        if (resource.name or "").startswith(UI_ROUTE_PREFIX):
            continue
        if route.method == "HEAD":
            continue
        found.add((resource.canonical, route.method.lower()))
    return found


def documented() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, operations in openapi.DOCUMENT["paths"].items()
        for method in operations
        if method in HTTP_METHODS
    }


def test_every_route_is_documented_and_every_documented_operation_is_routed(settings):
    app = create_app(settings)

    missing_from_document = routed(app) - documented()
    not_routed = documented() - routed(app)

    assert not missing_from_document, missing_from_document
    assert not not_routed, not_routed


def test_every_schema_reference_resolves():
    schemas = openapi.DOCUMENT["components"]["schemas"]
    references = []

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                references.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(openapi.DOCUMENT)

    assert references
    for reference in references:
        assert reference.startswith("#/components/schemas/"), reference
        assert reference.rsplit("/", 1)[1] in schemas, reference


def test_documented_request_fields_are_the_accepted_ones():
    schemas = openapi.DOCUMENT["components"]["schemas"]

    assert set(schemas["ClusterChanges"]["properties"]) == set(clusters.EDITABLE_FIELDS)
    assert set(schemas["TokenRequest"]["properties"]) == set(routes_tokens.CREATE_FIELDS)


def test_path_parameters_are_declared():
    for path, operations in openapi.DOCUMENT["paths"].items():
        if "{" not in path:
            continue
        declared = {p["name"] for p in operations.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), path
