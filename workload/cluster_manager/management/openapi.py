"""The OpenAPI 3 document of the Management API, served at GET /openapi.json.

A test walks the application's router and checks that this document and the routes agree.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from cluster_manager import cluster_health, cluster_listing, validation

routes = web.RouteTableDef()

OPENAPI_PATH = "/openapi.json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _integer(minimum: int | None = None, maximum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


STRING = {"type": "string"}
# Text the server stores or searches: PostgreSQL text cannot hold NUL, so it is refused (400).
NO_NUL = r"^[^\x00]*$"
NULLABLE_STRING = {"type": "string", "nullable": True}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {**TIMESTAMP, "nullable": True}
NUMBER = {"type": "number"}
NULLABLE_RATIO = {"type": "number", "nullable": True, "description": "0..1, null when unknown"}
THRESHOLD = {**_integer(0, 100), "description": "percent"}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


STATUS_COUNTS = {"type": "array", "items": _ref("StatusCount")}

SCHEMAS: dict[str, Any] = {
    "SyncEnvelope": _object(
        {
            "type": {"type": "string", "enum": ["sync"]},
            "status": {"type": "string", "enum": ["Success"]},
            "status_code": {"type": "integer", "enum": [200]},
            "operation": STRING,
            "error_code": {"type": "integer", "enum": [0]},
            "error": STRING,
            "metadata": {"description": "the answer; its schema is given per operation"},
        }
    ),
    "ErrorEnvelope": _object(
        {
            "type": {"type": "string", "enum": ["error"]},
            "status": STRING,
            "status_code": {"type": "integer", "enum": [0]},
            "operation": STRING,
            "error_code": {"type": "integer", "description": "the HTTP status"},
            "error": {"type": "string", "description": "what went wrong, naming the field"},
            "metadata": {"nullable": True},
        }
    ),
    "StatusCount": _object({"status": STRING, "count": _integer(0)}),
    "StoragePoolUsage": _object(
        {
            "name": STRING,
            "member": {"type": "string", "description": "empty for a shared (remote) pool"},
            "total": {**_integer(0), "description": "bytes"},
            "usage": {**_integer(0), "description": "bytes"},
        }
    ),
    "MemberMetricsSummary": _object(
        {"member": STRING, "service": STRING, "metrics_bytes": _integer(0)}
    ),
    "Warning": _object(
        {
            "kind": {
                "type": "string",
                "enum": ["stale", "memory", "storage_pool", "storage_pools"],
            },
            "message": {"type": "string", "description": "for people: what and how much"},
            "usage": {**_integer(0), "description": "bytes (memory, storage_pool)"},
            "total": {**_integer(0), "description": "bytes (memory, storage_pool)"},
            "usage_percent": {**NUMBER, "description": "memory, storage_pool"},
            "threshold": {**THRESHOLD, "description": "percent (memory, storage_pool[s])"},
            "pool": {**STRING, "description": "storage_pool"},
            "member": {**STRING, "description": "storage_pool; empty for a shared pool"},
            "count": {**_integer(1), "description": "storage_pools: pools not listed"},
            "seconds_since_heartbeat": {**NUMBER, "description": "stale"},
            "stale_after_seconds": {**NUMBER, "description": "stale"},
        },
        required=["kind", "message"],
    ),
    "Cluster": _object(
        {
            "name": STRING,
            "description": STRING,
            "status": {"type": "string", "enum": list(cluster_listing.STATUSES)},
            "fingerprint": {"type": "string", "description": "SHA-256 of the certificate"},
            "joined_at": TIMESTAMP,
            "last_status_update_at": NULLABLE_TIMESTAMP,
            "disk_threshold": THRESHOLD,
            "memory_threshold": THRESHOLD,
            "instance_count": _integer(0),
            "member_count": _integer(0),
            "cpu_total_count": _integer(0),
            "cpu_load_1": {
                "type": "string",
                "description": 'e.g. "0.42"; empty before a heartbeat',
            },
            "cpu_load_5": STRING,
            "cpu_load_15": STRING,
            "memory_total_amount": {**_integer(0), "description": "bytes"},
            "memory_usage": {**_integer(0), "description": "bytes"},
            "instance_statuses": STATUS_COUNTS,
            "member_statuses": STATUS_COUNTS,
            "ceph_statuses": STATUS_COUNTS,
            "storage_pool_usages": {"type": "array", "items": _ref("StoragePoolUsage")},
            "server_metrics": {"type": "array", "items": _ref("MemberMetricsSummary")},
            "ui_url": {"type": "string", "description": "the cluster's LXD UI, or empty"},
            "health": {"type": "string", "enum": list(cluster_health.HEALTH_STATES)},
            "warnings": {"type": "array", "items": _ref("Warning")},
            "heartbeat_age_seconds": {
                "type": "number",
                "nullable": True,
                "description": "seconds since the last heartbeat (server clock); null before one",
            },
            "memory_usage_ratio": NULLABLE_RATIO,
            "storage_total_amount": {**_integer(0), "description": "bytes, every pool summed"},
            "storage_usage": {**_integer(0), "description": "bytes, every pool summed"},
            "storage_max_usage_ratio": {
                **NULLABLE_RATIO,
                "description": "usage/total of the fullest pool; null when no pool has a size",
            },
            "tunnel_connected": {
                "type": "boolean",
                "description": "whether the cluster's reverse tunnel is connected to a unit",
            },
            "tunnel_connected_at": {
                **NULLABLE_TIMESTAMP,
                "description": "when the live tunnel connected; null when not connected",
            },
        }
    ),
    "ClusterPage": _object(
        {
            "clusters": {"type": "array", "items": _ref("Cluster")},
            "total": {**_integer(0), "description": "clusters matching the filters, all pages"},
            "limit": _integer(1, cluster_listing.MAX_LIMIT),
            "offset": _integer(0),
        }
    ),
    "ClusterChanges": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "description": {
                "type": "string",
                "maxLength": validation.MAX_DESCRIPTION,
                "pattern": NO_NUL,
            },
            "disk_threshold": THRESHOLD,
            "memory_threshold": THRESHOLD,
        },
    },
    "TokenRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["cluster_name"],
        "properties": {
            "cluster_name": {"type": "string", "pattern": validation.NAME_PATTERN.pattern},
            "description": {
                "type": "string",
                "maxLength": validation.MAX_DESCRIPTION,
                "pattern": NO_NUL,
            },
            "expiry": {
                "oneOf": [
                    {"type": "integer", "minimum": 60, "maximum": 366 * 86400},
                    {"type": "string", "pattern": r"^\d{1,9}[smhdw]?$"},
                ],
                "nullable": True,
                "description": (
                    "lifetime: seconds, or a duration such as 30m, 12h, 7d, 2w (1 minute to "
                    "1 year); default (missing or null) the server's token_expiry"
                ),
            },
        },
    },
    "Token": _object(
        {
            "name": STRING,
            "description": STRING,
            "expires_at": TIMESTAMP,
            "created_at": TIMESTAMP,
            "expired": {"type": "boolean"},
        }
    ),
    "CreatedToken": _object(
        {
            "name": STRING,
            "description": STRING,
            "expires_at": TIMESTAMP,
            "created_at": TIMESTAMP,
            "token": {"type": "string", "description": "base64 join token (shown once)"},
            "command": {
                "type": "string",
                "description": "microcloud cluster-manager join <token>",
            },
        }
    ),
    "Overview": _object(
        {
            "clusters": _object(
                {
                    "total": _integer(0),
                    "reporting": {**_integer(0), "description": "clusters with heartbeat data"},
                    "by_health": _object(
                        {state: _integer(0) for state in cluster_health.HEALTH_STATES}
                    ),
                    "by_status": {
                        "type": "object",
                        "additionalProperties": _integer(0),
                        "description": "cluster status -> clusters",
                    },
                }
            ),
            "instances": _object({"total": _integer(0), "statuses": STATUS_COUNTS}),
            "members": _object({"total": _integer(0), "statuses": STATUS_COUNTS}),
            "ceph": _object({"statuses": STATUS_COUNTS}),
            "cpu": _object(
                {
                    "total_count": _integer(0),
                    "load_1": NUMBER,
                    "load_5": NUMBER,
                    "load_15": NUMBER,
                    "load_1_ratio": {**NULLABLE_RATIO, "description": "load_1 / total_count"},
                }
            ),
            "memory": _object(
                {"total": _integer(0), "usage": _integer(0), "usage_ratio": NULLABLE_RATIO}
            ),
            "storage": _object(
                {"total": _integer(0), "usage": _integer(0), "usage_ratio": NULLABLE_RATIO}
            ),
            "warnings": _object(
                {
                    "total": {**_integer(0), "description": "stale or warning clusters"},
                    "clusters": {
                        "type": "array",
                        "maxItems": 100,
                        "items": _object(
                            {
                                "name": STRING,
                                "health": {"type": "string", "enum": ["stale", "warning"]},
                                "warnings": {"type": "array", "items": _ref("Warning")},
                                "last_status_update_at": NULLABLE_TIMESTAMP,
                                "heartbeat_age_seconds": {"type": "number", "nullable": True},
                            }
                        ),
                    },
                    "truncated": {"type": "boolean"},
                }
            ),
            "stale_after_seconds": NUMBER,
            "generated_at": TIMESTAMP,
        }
    ),
    "Configuration": {
        "type": "object",
        "properties": {
            "connector_addresses": {"type": "array", "items": STRING},
            "grafana_url": NULLABLE_STRING,
            "grafana_dashboard_uid": NULLABLE_STRING,
            "heartbeat_interval": _integer(1),
            "stale_after_seconds": NUMBER,
            "user": {**_ref("User"), "nullable": True},
            "csrf_token": {
                **NULLABLE_STRING,
                "description": "send as X-CSRF-Token on POST, PATCH, DELETE; null when signed out",
            },
        },
    },
    "User": _object(
        {
            "subject": STRING,
            "name": STRING,
            "email": STRING,
            "groups": {"type": "array", "items": STRING},
            "is_admin": {"type": "boolean"},
        }
    ),
}


def _ok(schema: dict[str, Any] | None, description: str) -> dict[str, Any]:
    envelope: dict[str, Any] = {"allOf": [_ref("SyncEnvelope")]}
    metadata = schema if schema is not None else {"nullable": True, "enum": [None]}
    envelope["allOf"].append({"type": "object", "properties": {"metadata": metadata}})
    return {"description": description, "content": {"application/json": {"schema": envelope}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "bad input; the message names the field",
        401: "not signed in",
        403: "not an administrator, or missing CSRF header",
        404: "no such name",
        409: "the name is taken",
        413: "body too large",
        429: "too many requests already wait for this cluster's tunnel",
        500: "the cluster answered 500 without an LXD response (its LXD failed)",
        502: "the cluster's tunnel broke before it answered",
        503: "database unavailable (or, through a tunnel: tunnel not connected)",
        504: "the cluster did not answer through its tunnel in time",
    }
    content = {"application/json": {"schema": _ref("ErrorEnvelope")}}
    return {str(s): {"description": reasons[s], "content": content} for s in statuses}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


NAME_PARAMETER = {"name": "name", "in": "path", "required": True, "schema": STRING}
CSRF_PARAMETER = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": True,
    "schema": STRING,
    "description": "the session CSRF token: GET /1.0/configuration or the __Host-mcm_csrf cookie",
}
SIGNED_IN = [{"session": []}]
READ_ERRORS = (401, 403, 503)
WRITE_ERRORS = (400, 401, 403, 413, 503)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


LIST_PARAMETERS = [
    _query(
        "search",
        {"type": "string", "maxLength": cluster_listing.MAX_SEARCH, "pattern": NO_NUL},
        "case-insensitive substring of the name",
    ),
    _query(
        "status",
        {"type": "string", "enum": ["", *cluster_listing.STATUSES]},
        "cluster status; empty for any",
    ),
    {
        **_query(
            "health",
            {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": list(cluster_health.HEALTH_STATES)},
            },
            "comma-separated health states (any of them matches); leave it out for any",
        ),
        "style": "form",
        "explode": False,
    },
    _query(
        "sort",
        {"type": "string", "enum": list(cluster_listing.SORT_KEYS), "default": "name"},
        "sort key (health sorts stale, warning, pending, healthy); ties by name",
    ),
    _query(
        "order",
        {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
        "sort direction; missing values always last",
    ),
    _query(
        "limit",
        {**_integer(1, cluster_listing.MAX_LIMIT), "default": cluster_listing.DEFAULT_LIMIT},
        "page size",
    ),
    _query(
        "offset", {**_integer(0, cluster_listing.MAX_OFFSET), "default": 0}, "clusters to skip"
    ),
]


def _redirect(summary: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": [],
            "responses": {"302": {"description": "redirect"}, "303": {"description": "redirect"}},
        }
    }


PATHS: dict[str, Any] = {
    "/oidc/login": _redirect("Start sign-in: redirect to the identity provider (PKCE)"),
    "/oidc/callback": {
        "get": {
            "summary": "The identity provider's answer: starts the session, redirects to /",
            "security": [],
            "parameters": [
                _query("code", STRING, "authorization code"),
                _query("state", STRING, "state sent by /oidc/login"),
            ],
            "responses": {"303": {"description": "signed in"}, **_errors(400, 401, 503)},
        }
    },
    "/oidc/logout": {
        "post": {
            "summary": "Sign out: end the session on every unit (and at the provider, if offered)",
            "security": [],
            "parameters": [{**CSRF_PARAMETER, "required": False}],
            "requestBody": {
                "required": False,
                "content": {
                    "application/x-www-form-urlencoded": {
                        # the token, when X-CSRF-Token is not sent
                        "schema": {"type": "object", "properties": {"csrf_token": STRING}}
                    }
                },
            },
            "responses": {
                "200": _ok(
                    _object({"redirect": STRING}, ["redirect"]),
                    "signed out (X-CSRF-Token sent): where the browser goes next",
                ),
                "303": {"description": "signed out (form): the provider's end-session page or /"},
                **_errors(400, 403, 413, 503),
            },
        }
    },
    "/health/live": {
        "get": {
            "summary": "Liveness probe (no sign-in)",
            "security": [],
            "responses": {"200": _ok(_object({"live": {"type": "boolean"}}), "alive")},
        }
    },
    "/health/ready": {
        "get": {
            "summary": "Readiness probe: the database answers (no sign-in)",
            "security": [],
            "responses": {
                "200": _ok(_object({"ready": {"type": "boolean"}}), "ready"),
                **_errors(503),
            },
        }
    },
    OPENAPI_PATH: {
        "get": {
            "summary": "This document (no sign-in)",
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3 document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
    "/1.0/configuration": {
        "get": {
            "summary": "What the UI needs to start; the signed-in user or null (no sign-in)",
            "security": [],
            "responses": {"200": _ok(_ref("Configuration"), "configuration")},
        }
    },
    "/1.0/overview": {
        "get": {
            "summary": "Fleet aggregates in one call",
            "responses": {"200": _ok(_ref("Overview"), "the fleet"), **_errors(*READ_ERRORS)},
        }
    },
    "/1.0/remote-cluster": {
        "get": {
            "summary": "One page of enrolled clusters with health and warnings",
            "parameters": LIST_PARAMETERS,
            "responses": {
                "200": _ok(_ref("ClusterPage"), "a page of clusters"),
                **_errors(400, *READ_ERRORS),
            },
        }
    },
    "/1.0/remote-cluster/{name}": {
        "parameters": [NAME_PARAMETER],
        "get": {
            "summary": "One cluster",
            "responses": {
                "200": _ok(_ref("Cluster"), "the cluster"),
                **_errors(404, *READ_ERRORS),
            },
        },
        "patch": {
            "summary": "Change description or thresholds (all or nothing)",
            "parameters": [CSRF_PARAMETER],
            "requestBody": _body(_ref("ClusterChanges")),
            "responses": {
                "200": _ok(_ref("Cluster"), "the changed cluster"),
                **_errors(404, *WRITE_ERRORS),
            },
        },
        "delete": {
            "summary": "Remove the cluster; every unit refuses it at once",
            "parameters": [CSRF_PARAMETER],
            "responses": {"200": _ok(None, "removed"), **_errors(404, *WRITE_ERRORS)},
        },
    },
    "/1.0/remote-cluster/{name}/lxd/{path}": {
        "parameters": [
            NAME_PARAMETER,
            {"name": "path", "in": "path", "required": True, "schema": STRING},
        ],
        "get": {
            "summary": "Read the cluster's LXD API (GET /1.0/{path}) through its reverse tunnel",
            "description": (
                "Works from any unit. 503 when the cluster has no tunnel (enable it on the"
                " cluster with `microcloud cluster-manager set reverse_tunnel true`), 504 when"
                " it does not answer in time, 502 when the tunnel breaks; LXD's own errors keep"
                " their status."
            ),
            "responses": {
                "200": {
                    "description": "LXD's JSON response envelope, as the cluster answered it",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_errors(400, 404, 429, 500, 502, 503, 504, *READ_ERRORS),
            },
        },
    },
    "/1.0/remote-cluster-join-token": {
        "get": {
            "summary": "Pending join tokens, without secrets",
            "responses": {
                "200": _ok({"type": "array", "items": _ref("Token")}, "pending tokens"),
                **_errors(*READ_ERRORS),
            },
        },
        "post": {
            "summary": "Create a join token",
            "parameters": [CSRF_PARAMETER],
            "requestBody": _body(_ref("TokenRequest")),
            "responses": {
                "200": _ok(_ref("CreatedToken"), "the token and the join command"),
                **_errors(409, *WRITE_ERRORS),
            },
        },
    },
    "/1.0/remote-cluster-join-token/{name}": {
        "parameters": [NAME_PARAMETER],
        "delete": {
            "summary": "Revoke a pending join token",
            "parameters": [CSRF_PARAMETER],
            "responses": {"200": _ok(None, "revoked"), **_errors(404, *WRITE_ERRORS)},
        },
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "MicroCloud Cluster Manager — Management API",
        "version": "1.0",
        "description": (
            "JSON in LXD-style envelopes. /1.0 needs a signed-in administrator (OpenID Connect "
            "session cookie) except GET /1.0/configuration; state-changing calls also need the "
            "CSRF header. Errors name the field at fault."
        ),
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "__Host-mcm_session"},
        },
    },
    "security": SIGNED_IN,
    "paths": PATHS,
}
_DOCUMENT_BYTES = json.dumps(DOCUMENT, separators=(",", ":")).encode()


@routes.get(OPENAPI_PATH)
async def openapi_document(_request: web.Request) -> web.Response:
    """The OpenAPI 3 document (not an envelope: tools read it as it is)."""
    return web.Response(body=_DOCUMENT_BYTES, content_type="application/json")
