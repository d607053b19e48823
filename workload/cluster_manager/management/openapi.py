"""The OpenAPI 3.0 document of the Management API, served at GET /openapi.json.

Generated from the application's route table and, for each route, the ``@documented`` models
of its handler (see operations.py): their JSON Schemas come from msgspec, descriptions from the
models' docstrings and field metadata, summaries from the handlers' docstrings.

OpenAPI 3.0 rather than 3.1: its JSON Schema dialect says what the API does for integers
(60.0 is refused where an integer is expected; in JSON Schema 2020-12 it is an integer). msgspec
writes 2020-12, so ``openapi30`` rewrites the few differences (null, exclusive bounds).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec
from aiohttp import web

from cluster_manager.envelope import ErrorEnvelope, SyncEnvelope
from cluster_manager.management.operations import (
    ERROR_REASONS,
    NoEnvelope,
    Operation,
    Redirect,
    documented,
    operation_of,
)
from cluster_manager.management.roles import needed_role
from cluster_manager.management.static_routes import ROUTE_PREFIX as UI_ROUTE_PREFIX

routes = web.RouteTableDef()

OPENAPI_PATH = "/openapi.json"
REF_TEMPLATE = "#/components/schemas/{name}"
INFO = {
    "title": "MicroCloud Cluster Manager — Management API",
    "version": "1.0",
    "description": (
        "JSON in LXD-style envelopes. /1.0 needs a signed-in user (OpenID Connect session "
        "cookie) except GET /1.0/configuration, whose role (admin, operator or viewer, from "
        "the groups claim) allows the operation: x-required-role names the least role each "
        "operation needs. State-changing calls also need the CSRF header. Errors name the "
        "field at fault."
    ),
}
SECURITY_SCHEMES = {"session": {"type": "apiKey", "in": "cookie", "name": "__Host-mcm_session"}}
CSRF_PARAMETER = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": True,
    "schema": {"type": "string"},
    "description": "the session CSRF token: GET /1.0/configuration or the __Host-mcm_csrf cookie",
}
_PATH_PARAMETER = re.compile(r"\{([^}/:]+)")


def api_routes(router: web.UrlDispatcher) -> list[tuple[str, str, Any]]:
    """(path, method, handler) of every JSON API route, in the order they were added.

    Left out: HEAD that aiohttp adds beside GET, and the web UI's pages and files.
    """
    found = []
    for route in router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        if (resource.name or "").startswith(UI_ROUTE_PREFIX) or route.method == "HEAD":
            continue
        found.append((resource.canonical, route.method.lower(), route.handler))
    return found


def _ref(model: Any) -> dict[str, Any]:
    return {"$ref": REF_TEMPLATE.format(name=model.__name__)}


def _query_parameters(model: Any, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    component = schemas.pop(model.__name__)
    parameters = []
    for name, schema in component["properties"].items():
        parameter = {"name": name, "in": "query", "required": name in component["required"]}
        if description := schema.pop("description", None):
            parameter["description"] = description
        parameter["schema"] = schema
        if schema.get("type") == "array":
            parameter.update(style="form", explode=False)
        parameters.append(parameter)
    return parameters


def _request_body(model: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    schema = _ref(model)
    if not schemas[model.__name__].get("required"):
        # Every field is optional, as in a PATCH: an empty body would change nothing.
        schema = {"allOf": [schema], "minProperties": 1}
    if extra := getattr(model, "__openapi_extra__", None):
        # What the model checks beyond its fields' types (e.g. "at least one of these").
        schema = {"allOf": [schema], **extra}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _form_body(model: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    form = "application/x-www-form-urlencoded"
    return {"required": False, "content": {form: {"schema": schemas.pop(model.__name__)}}}


def _csrf_parameter(operation: Operation, method: str) -> dict[str, Any] | None:
    csrf = operation.csrf
    if csrf is None and operation.signed_in and method != "get":
        csrf = "required"
    if csrf is None:
        return None
    return {**CSRF_PARAMETER, "required": csrf == "required"}


def _responses(operation: Operation, response_schema: dict[str, Any] | None) -> dict[str, Any]:
    content: dict[str, Any]
    if operation.response is Redirect:
        answers: dict[str, Any] = {
            "302": {"description": "redirect"},
            "303": {"description": "redirect"},
        }
    elif operation.response is NoEnvelope:
        content = {"application/json": {"schema": {"type": "object"}}}
        answers = {"200": {"description": operation.response_description, "content": content}}
    else:
        metadata = response_schema or {"nullable": True, "enum": [None]}
        envelope = {
            "allOf": [_ref(SyncEnvelope), {"type": "object", "properties": {"metadata": metadata}}]
        }
        content = {"application/json": {"schema": envelope}}
        answers = {"200": {"description": operation.response_description, "content": content}}
    if operation.also_redirects:
        answers["303"] = {"description": operation.also_redirects}
    error = {"application/json": {"schema": _ref(ErrorEnvelope)}}
    for status in operation.errors:
        reason = operation.reasons.get(status) or ERROR_REASONS[status]
        answers[str(status)] = {"description": reason, "content": error}
    return answers


def openapi30(node: Any) -> Any:
    """A msgspec (JSON Schema 2020-12) schema in OpenAPI 3.0's dialect."""
    if isinstance(node, list):
        return [openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: openapi30(value) for key, value in node.items()}
    if node.get("type") == "null":
        return {"nullable": True, "enum": [None]}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if not isinstance(node.get(exclusive, True), bool):
            node[bound], node[exclusive] = node[exclusive], True
    choices = node.get("anyOf", [])
    if any(choice == {"nullable": True, "enum": [None]} for choice in choices):
        rest = [choice for choice in choices if choice != {"nullable": True, "enum": [None]}]
        del node["anyOf"]
        if len(rest) > 1:
            node["anyOf"] = rest
        elif "$ref" in rest[0]:
            node["allOf"] = rest
        else:
            node = {**rest[0], **node}
        node["nullable"] = True
    return node


def build_document(router: web.UrlDispatcher) -> dict[str, Any]:
    """The OpenAPI document of every API route of ``router``.

    Raises:
        LookupError: a route's handler has no ``@documented`` operation.
    """
    found = []
    for path, method, handler in api_routes(router):
        operation = operation_of(handler)
        if operation is None:
            raise LookupError(f"{method.upper()} {path}: the handler is not @documented")
        found.append((path, method, handler, operation))

    models: list[Any] = [SyncEnvelope, ErrorEnvelope]
    for *_, operation in found:
        models.extend(
            m for m in (operation.body, operation.query, operation.form) if m is not None
        )
        if operation.response not in (None, Redirect, NoEnvelope):
            models.append(operation.response)
    unique = list(dict.fromkeys(models))
    refs, schemas = msgspec.json.schema_components(unique, ref_template=REF_TEMPLATE)
    schemas = openapi30(schemas)
    response_schemas = dict(zip(unique, openapi30(refs), strict=True))
    forms = {
        model: _form_body(model, schemas)
        for model in dict.fromkeys(op.form for *_, op in found if op.form is not None)
    }
    query_parameters = {
        model: _query_parameters(model, schemas)
        for model in dict.fromkeys(op.query for *_, op in found if op.query is not None)
    }

    paths: dict[str, Any] = {}
    for path, method, handler, operation in found:
        item = paths.setdefault(path, {})
        if names := _PATH_PARAMETER.findall(path):
            item["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in names
            ]
        summary, _, details = (handler.__doc__ or "").strip().partition("\n")
        entry: dict[str, Any] = {"summary": operation.summary or summary}
        if details.strip() and not operation.summary:
            entry["description"] = " ".join(details.split())
        if not operation.signed_in:
            entry["security"] = []
        else:
            entry["x-required-role"] = needed_role(method, operation.role)
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", **schema},
            }
            for name, schema in operation.path_schemas.items()
        ]
        if csrf := _csrf_parameter(operation, method):
            parameters.append(csrf)
        if operation.query is not None:
            parameters.extend(query_parameters[operation.query])
        if parameters:
            entry["parameters"] = parameters
        if operation.body is not None:
            entry["requestBody"] = _request_body(operation.body, schemas)
        elif operation.raw_body:
            entry["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": {}}},
                "description": "passed on to LXD as it is",
            }
        elif operation.form is not None:
            entry["requestBody"] = forms[operation.form]
        entry["responses"] = _responses(operation, response_schemas.get(operation.response))
        item[method] = entry
    return {
        "openapi": "3.0.3",
        "info": INFO,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
        "security": [{"session": []}],
        "paths": paths,
    }


@functools.cache
def document() -> dict[str, Any]:
    """The document of the Management API as ``create_app`` builds it."""
    from cluster_manager.management.app import create_app
    from cluster_manager.settings import Settings

    return build_document(create_app(Settings()).router)


@functools.cache
def _document_bytes() -> bytes:
    return msgspec.json.encode(document())


@routes.get(OPENAPI_PATH)
@documented(
    response=NoEnvelope,
    signed_in=False,
    summary="This document (no sign-in)",
    response_description="OpenAPI 3 document",
)
async def openapi_document(_request: web.Request) -> web.Response:
    """The OpenAPI document (not an envelope: tools read it as it is)."""
    return web.Response(body=_document_bytes(), content_type="application/json")
