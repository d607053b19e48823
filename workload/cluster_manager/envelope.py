"""LXD-style JSON envelopes and the one middleware that turns errors into them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from cluster_manager.errors import ApiError
from cluster_manager.fields import field_message

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_encode = msgspec.json.Encoder(enc_hook=str).encode


class SyncEnvelope(msgspec.Struct):
    """An LXD-style answer; ``metadata`` is the answer, its schema given per operation."""

    type: Literal["sync"]
    status: Literal["Success"]
    status_code: Literal[200]
    operation: str
    error_code: Literal[0]
    error: str
    metadata: Any


class ErrorEnvelope(msgspec.Struct):
    """An LXD-style refusal."""

    type: Literal["error"]
    status: str
    status_code: Literal[0]
    operation: str
    error_code: Annotated[int, msgspec.Meta(description="the HTTP status")]
    error: Annotated[str, msgspec.Meta(description="what went wrong, naming the field")]
    metadata: None


def sync_response(metadata: Any = None, status: int = 200) -> web.Response:
    """Answer with an LXD ``sync`` envelope (``metadata``: a Struct or plain JSON values)."""
    body = SyncEnvelope("sync", "Success", 200, "", 0, "", metadata)
    return web.Response(body=_encode(body), status=status, content_type="application/json")


def empty_ok() -> web.Response:
    """Answer 200 with no body and close the connection.

    What the MicroCloud daemon needs on join, status and leave: it never reads or closes the body
    of a 200, so any body pins one of its sockets for good (PROTOCOL.md).
    """
    response = web.Response(status=200)
    response.force_close()
    return response


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """Answer with an LXD ``error`` envelope."""
    body = ErrorEnvelope("error", "", 0, "", status, message, None)
    return web.Response(
        body=_encode(body), status=status, content_type="application/json", headers=headers
    )


_DATABASE_DOWN = (
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    # What asyncpg's pool raises when it resets a connection the server dropped in the middle
    # of a query (PostgreSQL stopping); the pool discards that connection, so it is transient.
    asyncpg.exceptions.InternalClientError,
    asyncio.TimeoutError,
)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain exceptions, HTTP errors and crashes into JSON error envelopes."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.message, error.headers)
    except msgspec.DecodeError as error:  # ValidationError included
        # A body or query that does not fit its declared model (see cluster_manager.fields).
        return error_response(400, field_message(error))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {k: v for k, v in error.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(error.status, error.reason, headers)
    except web.RequestPayloadError:
        # The body could not be read as sent, e.g. Content-Encoding: gzip over bytes that are
        # not gzip: the client's fault, said without the decoder's details.
        return error_response(400, "Request body cannot be decoded")
    except _DATABASE_DOWN:
        logger.warning("database unavailable for %s %s", request.method, request.path)
        return error_response(503, "Service temporarily unavailable", {"Retry-After": "5"})
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("unhandled error for %s %s", request.method, request.path)
        return error_response(500, "Internal server error")
