"""Actions on many clusters at once: remove them, or set their thresholds.

One statement acts on every valid name; each name gets its own result (ok, not_found, or
error for a name that cannot be a cluster's), so a partial failure is told item by item.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import asyncpg
import msgspec

from cluster_manager import fields
from cluster_manager.clusters import OwnThreshold
from cluster_manager.db import retry_on_deadlock
from cluster_manager.fields import NO_NUL_REGEX, Count

MAX_BULK_NAMES = 500
MAX_NAME_LENGTH = 255

DELETE_CLUSTERS = "DELETE FROM remote_clusters WHERE name = ANY($1::text[]) RETURNING name"
# A threshold whose flag ($4, $5) is true is set to $2/$3; NULL follows the fleet default.
UPDATE_THRESHOLDS = """
UPDATE remote_clusters SET
    disk_threshold = CASE WHEN $4::boolean THEN $2::smallint ELSE disk_threshold END,
    memory_threshold = CASE WHEN $5::boolean THEN $3::smallint ELSE memory_threshold END
WHERE name = ANY($1::text[])
RETURNING name
"""

Action = Literal["remove", "set_thresholds"]
Outcome = Literal["ok", "not_found", "error"]
Names = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=MAX_NAME_LENGTH, pattern=NO_NUL_REGEX)]],
    msgspec.Meta(
        min_length=1,
        max_length=MAX_BULK_NAMES,
        description="cluster names (up to 500); repeats count once; an invalid one: item error",
    ),
]


class BulkRemove(msgspec.Struct, forbid_unknown_fields=True):
    """Clusters to remove."""

    names: Names


class BulkThresholds(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Thresholds to set on clusters: a number is the cluster's own, null the fleet default."""

    # The document says what __post_init__ checks (see openapi._request_body).
    __openapi_extra__: ClassVar[dict[str, Any]] = {
        "anyOf": [{"required": ["disk_threshold"]}, {"required": ["memory_threshold"]}]
    }

    names: Names
    disk_threshold: OwnThreshold | msgspec.UnsetType = msgspec.UNSET
    memory_threshold: OwnThreshold | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        """Refuse a request that sets nothing."""
        if self.disk_threshold is msgspec.UNSET and self.memory_threshold is msgspec.UNSET:
            raise ValueError("memory_threshold: give disk_threshold or memory_threshold or both")


class BulkItem(msgspec.Struct):
    """What happened to one cluster."""

    name: str
    result: Annotated[
        Outcome, msgspec.Meta(description="ok; not_found: no such cluster; error: see message")
    ]
    message: Annotated[str, msgspec.Meta(description="empty when ok")] = ""


class BulkResult(msgspec.Struct):
    """The result for each name, in the order given."""

    action: Action
    results: list[BulkItem]
    succeeded: Count
    failed: Count


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _results(action: Action, names: list[str], valid: list[str], rows: list) -> BulkResult:
    done = {row["name"] for row in rows}
    results = []
    for name in names:
        if name in done:
            results.append(BulkItem(name, "ok"))
        elif name in valid:
            results.append(BulkItem(name, "not_found", f"no cluster named {name!r}"))
        else:
            results.append(BulkItem(name, "error", "not a valid cluster name"))
    return BulkResult(action, results, len(done), len(results) - len(done))


def _names(names: list[str]) -> tuple[list[str], list[str]]:
    """The names once each, in order, and those that can be a cluster's."""
    unique = list(dict.fromkeys(names))
    return unique, [name for name in unique if fields.NAME_PATTERN.fullmatch(name)]


async def remove_clusters(pool: asyncpg.Pool, request: BulkRemove) -> BulkResult:
    """Remove every named cluster in one statement; one result per name."""
    names, valid = _names(request.names)
    rows = await retry_on_deadlock(lambda: pool.fetch(DELETE_CLUSTERS, valid))
    return _results("remove", names, valid, rows)


async def set_thresholds(pool: asyncpg.Pool, request: BulkThresholds) -> BulkResult:
    """Set the given thresholds of every named cluster in one statement; one result per name."""
    names, valid = _names(request.names)
    disk, memory = request.disk_threshold, request.memory_threshold
    arguments = (
        valid,
        None if disk is msgspec.UNSET else disk,
        None if memory is msgspec.UNSET else memory,
        disk is not msgspec.UNSET,
        memory is not msgspec.UNSET,
    )
    rows = await retry_on_deadlock(lambda: pool.fetch(UPDATE_THRESHOLDS, *arguments))
    return _results("set_thresholds", names, valid, rows)
