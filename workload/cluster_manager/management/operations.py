"""What the OpenAPI document says about each route, declared beside its handler.

``@documented(...)`` records the models a handler reads and answers with; openapi.py builds the
document from these records and the application's route table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

Handler = TypeVar("Handler", bound=Callable[..., Any])

READ_ERRORS = (401, 403, 503)
WRITE_ERRORS = (400, 401, 403, 413, 503)
ERROR_REASONS = {
    400: "bad input; the message names the field",
    401: "not signed in",
    403: "the signed-in user's role does not allow this, or missing CSRF header",
    404: "no such name",
    409: "the name is taken",
    413: "body too large",
    429: "too many requests already wait for this cluster's tunnel",
    500: "the cluster answered 500 without an LXD response (its LXD failed)",
    502: "the cluster's tunnel broke before it answered",
    503: "database unavailable",
    504: "the cluster did not answer through its tunnel in time",
}


class NoEnvelope:
    """The answer is a document as it is, not an envelope (GET /openapi.json)."""


class Redirect:
    """The answer is a redirect (sign-in and sign-out)."""


@dataclasses.dataclass(frozen=True)
class Operation:
    """One operation: its summary is the handler's docstring (first line) unless given."""

    response: Any = None  # the envelope's metadata type; None: null; NoEnvelope; Redirect
    body: Any = None  # the request body's model
    raw_body: bool = False  # any JSON body (or none), passed on as it is
    query: Any = None  # the query string's model
    form: Any = None  # an application/x-www-form-urlencoded body's model (optional body)
    errors: tuple[int, ...] = ()
    reasons: Mapping[int, str] = dataclasses.field(default_factory=dict)  # beside ERROR_REASONS
    signed_in: bool = True  # needs a signed-in user with the role (and, to change, X-CSRF-Token)
    # The role needed (roles.py); None: viewer to read (GET), admin for anything else.
    role: Literal["viewer", "operator", "admin"] | None = None
    # The X-CSRF-Token header: None means required on a signed-in change, else not asked for.
    csrf: Literal["required", "optional"] | None = None
    # Path parameters with a narrower schema than a string, e.g. {"instance": {"pattern": …}}.
    path_schemas: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    also_redirects: str = ""  # besides the 200: a 303 answer, described so
    summary: str = ""
    response_description: str = "success"


def documented(**fields: Any) -> Callable[[Handler], Handler]:
    """Record an Operation on a handler (see Operation for the fields)."""

    def record(handler: Handler) -> Handler:
        handler.operation = Operation(**fields)  # type: ignore[attr-defined]
        return handler

    return record


def operation_of(handler: Any) -> Operation | None:
    """The Operation recorded on a handler, if any."""
    return getattr(handler, "operation", None)
