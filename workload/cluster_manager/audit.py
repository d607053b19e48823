"""The audit log: every state-changing call through the manager, recorded before and after.

A call is written (who, when, cluster, method, path, body digest) before it is made; if that
write fails the call is not made (503). When it ends, its result (status, message) and
duration complete the row. Read-only calls to clusters are recorded too when
``audit_read_calls`` is set. Entries older than ``audit_retention_days`` are pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec

from cluster_manager.errors import ApiError, BadRequest, ServiceUnavailable
from cluster_manager.fields import NO_NUL_REGEX

logger = logging.getLogger(__name__)

MAX_PAGE = 500
MAX_ID = 2**63 - 1  # PostgreSQL bigint
MAX_TEXT = 512
PRUNE_INTERVAL = 3600.0  # seconds between prunings on each unit

INSERT_ENTRY = """
INSERT INTO audit_log (subject, user_name, target, cluster, method, path, body_sha256)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""
FINISH_ENTRY = """
UPDATE audit_log
SET finished_at = now(), status = $2, result = $3, duration_ms = $4
WHERE id = $1
"""
PRUNE_ENTRIES = "DELETE FROM audit_log WHERE started_at < now() - make_interval(days => $1)"
LIST_ENTRIES = """
SELECT id, started_at, finished_at, subject, user_name, target, cluster, method, path,
       body_sha256, status, result, duration_ms
FROM audit_log
WHERE ($1::text IS NULL OR subject = $1 OR user_name = $1)
  AND ($2::text IS NULL OR cluster = $2)
  AND ($3::timestamptz IS NULL OR started_at >= $3)
  AND ($4::timestamptz IS NULL OR started_at < $4)
  AND ($5::bigint IS NULL OR id < $5)
ORDER BY id DESC
LIMIT $6
"""

Target = Literal["manager", "cluster"]
RFC3339_REGEX = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
# A time with its zone, as text: a query string's number is not taken for a Unix time.
Instant = Annotated[
    str,
    msgspec.Meta(
        pattern=RFC3339_REGEX,
        extra_json_schema={"format": "date-time"},
        description="RFC 3339 time with its zone, e.g. 2026-12-06T10:00:00Z",
    ),
]


def _instant(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{field}: not a valid time: {value[:40]!r}") from None


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who asks: the OIDC subject and name, or the CLI / a charm action.

    ``token`` is the signed-in user's OIDC access token, sent to the cluster's LXD as
    ``Authorization: Bearer`` so that LXD authenticates and authorises that person; empty for
    the CLI and charm actions (their calls carry no credentials). Kept out of ``repr``.
    """

    subject: str
    name: str
    token: str = dataclasses.field(default="", repr=False, compare=False)

    def lxd_headers(self) -> dict[str, str]:
        """The headers that carry this actor's credentials to a cluster's LXD."""
        return {"Authorization": "Bearer " + self.token} if self.token else {}


CLI_ACTOR = Actor(subject="cli", name="cluster-manager command (unit shell or charm action)")


@dataclasses.dataclass
class Outcome:
    """What the recorded call ended with; set by the caller before the block ends."""

    status: int | None = None
    result: str = ""


class AuditEntry(msgspec.Struct):
    """One recorded call."""

    id: int
    started_at: datetime
    finished_at: Annotated[
        datetime | None, msgspec.Meta(description="null: the outcome is unknown")
    ]
    subject: Annotated[str, msgspec.Meta(description="OIDC subject of who asked")]
    user_name: str
    target: Annotated[
        Target, msgspec.Meta(description="manager: a Management API call; cluster: an LXD call")
    ]
    cluster: str | None
    method: str
    path: str
    body_sha256: Annotated[str | None, msgspec.Meta(description="SHA-256 of the body sent")]
    status: Annotated[int | None, msgspec.Meta(description="HTTP status of the answer")]
    result: str | None
    duration_ms: float | None


class AuditQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Filters of GET /1.0/audit; newest first, paged with ``before``."""

    user: (
        Annotated[
            str,
            msgspec.Meta(max_length=256, pattern=NO_NUL_REGEX, description="OIDC subject or name"),
        ]
        | None
    ) = None
    cluster: Annotated[str, msgspec.Meta(max_length=256, pattern=NO_NUL_REGEX)] | None = None
    since: Annotated[Instant, msgspec.Meta(description="started at or after")] | None = None
    until: Annotated[Instant, msgspec.Meta(description="started before")] | None = None
    before: (
        Annotated[
            int,
            msgspec.Meta(ge=1, le=MAX_ID, description="entries older than this id (next page)"),
        ]
        | None
    ) = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)] = 100


class AuditPage(msgspec.Struct):
    """One page of entries, newest first."""

    entries: list[AuditEntry]
    next_before: Annotated[
        int | None, msgspec.Meta(description="pass as before= for the next page; null: last")
    ]


def digest(body: bytes | None) -> str | None:
    """The SHA-256 of a body, or None without one."""
    return hashlib.sha256(body).hexdigest() if body else None


def _clip(text: str) -> str:
    return text[:MAX_TEXT]


@contextlib.asynccontextmanager
async def recorded(
    pool: asyncpg.Pool,
    actor: Actor,
    target: Target,
    cluster: str | None,
    method: str,
    path: str,
    body: bytes | None,
) -> AsyncIterator[Outcome]:
    """Record a call around the block; refuse it (503) if it cannot be recorded.

    The block sets ``outcome.status`` and ``outcome.result``; an API error leaving the block
    is recorded with its status and message, anything else as 500.
    """
    try:
        entry_id = await pool.fetchval(
            INSERT_ENTRY,
            _clip(actor.subject),
            _clip(actor.name),
            target,
            cluster[:256] if cluster is not None else None,
            method[:16],
            path[:4096],
            digest(body),
        )
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError) as error:
        logger.warning("audit log write failed, call refused: %s", type(error).__name__)
        raise ServiceUnavailable(
            "The audit log cannot record this call right now, so it was not made"
        ) from None
    outcome = Outcome()
    started = time.monotonic()
    try:
        yield outcome
    except ApiError as error:
        outcome.status, outcome.result = error.status, error.message
        raise
    except BaseException as error:
        outcome.status, outcome.result = 500, type(error).__name__
        raise
    finally:
        duration = (time.monotonic() - started) * 1000
        await asyncio.shield(_finish(pool, entry_id, outcome, duration))


async def _finish(pool: asyncpg.Pool, entry_id: int, outcome: Outcome, duration: float) -> None:
    try:
        await pool.execute(FINISH_ENTRY, entry_id, outcome.status, _clip(outcome.result), duration)
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError) as error:
        # The call was made: its start is recorded, its outcome stays unknown (null).
        logger.warning("audit entry %s not completed: %s", entry_id, type(error).__name__)


async def list_entries(pool: asyncpg.Pool, query: AuditQuery) -> AuditPage:
    """Entries matching the filters, newest first, one page."""
    rows = await pool.fetch(
        LIST_ENTRIES,
        query.user,
        query.cluster,
        _instant(query.since, "since"),
        _instant(query.until, "until"),
        query.before,
        query.limit + 1,
    )
    entries = [msgspec.convert(dict(r), AuditEntry) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    return AuditPage(entries=entries, next_before=entries[-1].id if more else None)


async def prune(pool: asyncpg.Pool, retention_days: int) -> int:
    """Delete entries older than the retention; return how many went."""
    status = await pool.execute(PRUNE_ENTRIES, retention_days)
    return int(status.split()[-1])


async def prune_forever(pool: asyncpg.Pool, retention_days: int) -> None:
    """Prune now and every PRUNE_INTERVAL seconds (a unit's background task)."""
    while True:
        try:
            removed = await prune(pool, retention_days)
            if removed:
                logger.info("pruned %d audit entries", removed)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError) as error:
            logger.warning("audit pruning failed: %s", type(error).__name__)
        await asyncio.sleep(PRUNE_INTERVAL)
