"""The OpenAPI document and the Management API's routes describe the same API."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
import pytest
from aiohttp import web
from cluster_manager.clusters import ClusterChanges
from cluster_manager.management import openapi
from cluster_manager.management.app import create_app
from cluster_manager.management.operations import READ_ERRORS, documented
from cluster_manager.management.static_routes import ROUTE_PREFIX as UI_ROUTE_PREFIX
from cluster_manager.tokens import TokenRequest

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


def documented_operations() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, operations in openapi.document()["paths"].items()
        for method in operations
        if method in HTTP_METHODS
    }


def test_every_route_is_documented_and_every_documented_operation_is_routed(settings):
    app = create_app(settings)

    missing_from_document = routed(app) - documented_operations()
    not_routed = documented_operations() - routed(app)

    assert not missing_from_document, missing_from_document
    assert not not_routed, not_routed


def test_every_schema_reference_resolves():
    schemas = openapi.document()["components"]["schemas"]
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

    walk(openapi.document())

    assert references
    for reference in references:
        assert reference.startswith("#/components/schemas/"), reference
        assert reference.rsplit("/", 1)[1] in schemas, reference


def test_documented_request_fields_are_the_accepted_ones():
    schemas = openapi.document()["components"]["schemas"]

    for model in (ClusterChanges, TokenRequest):
        assert set(schemas[model.__name__]["properties"]) == set(model.__struct_fields__)
        assert schemas[model.__name__]["additionalProperties"] is False


def test_a_field_declared_once_shows_up_in_the_document():
    class Answer(msgspec.Struct):
        """What the test route answers."""

        colour: Annotated[str, msgspec.Meta(max_length=8, description="the colour")]

    app = web.Application()
    routes = web.RouteTableDef()

    @routes.get("/1.0/colour")
    @documented(response=Answer, errors=READ_ERRORS)
    async def colour(_request):
        """The colour of the day."""
        return web.json_response({"colour": "teal"})

    app.add_routes(routes)

    document = openapi.build_document(app.router)

    operation = document["paths"]["/1.0/colour"]["get"]
    assert operation["summary"] == "The colour of the day."
    assert set(operation["responses"]) == {"200", "401", "403", "503"}
    schema = document["components"]["schemas"]["Answer"]
    assert schema["description"] == "What the test route answers."
    assert schema["properties"]["colour"] == {
        "type": "string",
        "maxLength": 8,
        "description": "the colour",
    }


def test_a_route_without_documentation_is_refused():
    app = web.Application()

    async def secret(_request):
        return web.Response()

    app.router.add_get("/1.0/secret", secret)

    with pytest.raises(LookupError, match=r"GET /1\.0/secret"):
        openapi.build_document(app.router)


def test_path_parameters_are_declared():
    for path, operations in openapi.document()["paths"].items():
        if "{" not in path:
            continue
        declared = {p["name"] for p in operations.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), path
