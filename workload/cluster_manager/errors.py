"""Domain exceptions; the error middleware turns each into a JSON error with its status."""

from __future__ import annotations


class ApiError(Exception):
    """A refusal the client should see, with an HTTP status."""

    status = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    """The request is malformed or a field is invalid."""

    status = 400


class Unauthorized(ApiError):
    """The caller is not signed in or not identified."""

    status = 401


class Forbidden(ApiError):
    """The caller is known but not allowed."""

    status = 403


class NotFound(ApiError):
    """The named thing does not exist."""

    status = 404


class Conflict(ApiError):
    """The request clashes with existing state (a name already taken)."""

    status = 409


class PayloadTooLarge(ApiError):
    """The body is larger than allowed."""

    status = 413


class TooManyRequests(ApiError):
    """A rate limit was reached."""

    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after + 0.999)))})


class ServiceUnavailable(ApiError):
    """A dependency (the database) cannot be reached right now."""

    status = 503
