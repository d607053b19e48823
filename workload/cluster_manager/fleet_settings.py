"""Fleet-wide defaults stored in PostgreSQL and shared by every unit.

Thresholds are fleet defaults a cluster may override (its own value wins; NULL follows the
default). Staleness and the join-token lifetime come from the unit's configuration unless the
fleet row sets them, so every unit applies the same value once an administrator sets one.
"""

from __future__ import annotations

from typing import Annotated, Literal

import asyncpg
import msgspec

from cluster_manager.db import retry_on_deadlock
from cluster_manager.errors import BadRequest
from cluster_manager.fields import Percent
from cluster_manager.settings import Settings

DEFAULT_THRESHOLD = 80
MAX_STALE_INTERVALS = 10_000
MIN_TOKEN_EXPIRY = 60
MAX_TOKEN_EXPIRY = 366 * 86400

# Joined by every statement that needs a cluster's effective thresholds (a LEFT JOIN: a deleted
# row means the built-in defaults, never an empty fleet).
SETTINGS_JOIN_SQL = "LEFT JOIN fleet_settings s ON true"
THRESHOLD_COLUMNS_SQL = f"""
coalesce(c.disk_threshold, s.disk_threshold, {DEFAULT_THRESHOLD}) AS disk_threshold,
coalesce(c.memory_threshold, s.memory_threshold, {DEFAULT_THRESHOLD}) AS memory_threshold,
c.disk_threshold IS NOT NULL AS disk_threshold_own,
c.memory_threshold IS NOT NULL AS memory_threshold_own
"""
SELECT_SETTINGS = """
SELECT memory_threshold, disk_threshold, stale_after_intervals, token_expiry, updated_at
FROM fleet_settings
"""
# One statement: every given field changes, or none does. $n NULL with its flag false: kept.
UPSERT_SETTINGS = """
INSERT INTO fleet_settings AS f (id, memory_threshold, disk_threshold, stale_after_intervals,
                                 token_expiry)
VALUES (true, coalesce($1::smallint, 80), coalesce($2::smallint, 80),
        CASE WHEN $5::boolean THEN $3::float8 END, CASE WHEN $6::boolean THEN $4::integer END)
ON CONFLICT (id) DO UPDATE SET
    memory_threshold = coalesce($1, f.memory_threshold),
    disk_threshold = coalesce($2, f.disk_threshold),
    stale_after_intervals = CASE WHEN $5 THEN $3 ELSE f.stale_after_intervals END,
    token_expiry = CASE WHEN $6 THEN $4 ELSE f.token_expiry END,
    updated_at = now()
"""

Source = Literal["settings", "config"]
StaleIntervals = Annotated[
    float,
    msgspec.Meta(
        ge=1,
        le=MAX_STALE_INTERVALS,
        description="a cluster is stale after this many missed heartbeat intervals",
    ),
]
TokenExpiry = Annotated[
    int,
    msgspec.Meta(
        ge=MIN_TOKEN_EXPIRY, le=MAX_TOKEN_EXPIRY, description="default join-token lifetime, s"
    ),
]


class FleetSettings(msgspec.Struct, kw_only=True):
    """Fleet-wide defaults in effect on every unit, and where each comes from."""

    memory_threshold: Annotated[
        Percent, msgspec.Meta(description="memory warning threshold of clusters without their own")
    ]
    disk_threshold: Annotated[
        Percent,
        msgspec.Meta(description="storage pool warning threshold of clusters without their own"),
    ]
    stale_after_intervals: StaleIntervals
    stale_after_intervals_source: Annotated[
        Source, msgspec.Meta(description="settings: set fleet-wide; config: the unit's setting")
    ]
    stale_after_seconds: Annotated[
        float, msgspec.Meta(description="stale_after_intervals times heartbeat_interval")
    ]
    heartbeat_interval: Annotated[int, msgspec.Meta(ge=1, description="seconds (unit config)")]
    token_expiry: TokenExpiry
    token_expiry_source: Source


class SettingsChanges(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a PATCH may change; a missing field stays; null returns to the unit's config."""

    memory_threshold: Percent | msgspec.UnsetType = msgspec.UNSET
    disk_threshold: Percent | msgspec.UnsetType = msgspec.UNSET
    stale_after_intervals: StaleIntervals | msgspec.UnsetType | None = msgspec.UNSET
    token_expiry: TokenExpiry | msgspec.UnsetType | None = msgspec.UNSET


EDITABLE_SETTINGS: tuple[str, ...] = SettingsChanges.__struct_fields__


def effective(row: asyncpg.Record | None, settings: Settings) -> FleetSettings:
    """The defaults in effect: the fleet row's values, else the unit's configuration."""
    intervals = row["stale_after_intervals"] if row is not None else None
    expiry = row["token_expiry"] if row is not None else None
    stale = intervals if intervals is not None else settings.stale_after_intervals
    return FleetSettings(
        memory_threshold=row["memory_threshold"] if row is not None else DEFAULT_THRESHOLD,
        disk_threshold=row["disk_threshold"] if row is not None else DEFAULT_THRESHOLD,
        stale_after_intervals=stale,
        stale_after_intervals_source="settings" if intervals is not None else "config",
        stale_after_seconds=stale * settings.heartbeat_interval,
        heartbeat_interval=settings.heartbeat_interval,
        token_expiry=expiry if expiry is not None else settings.token_expiry,
        token_expiry_source="settings" if expiry is not None else "config",
    )


async def get_settings(pool: asyncpg.Pool, settings: Settings) -> FleetSettings:
    """The fleet-wide defaults in effect (one small read)."""
    return effective(await pool.fetchrow(SELECT_SETTINGS), settings)


async def stale_after_seconds(pool: asyncpg.Pool, settings: Settings) -> float:
    """Seconds without a heartbeat after which a cluster is stale, fleet-wide."""
    return (await get_settings(pool, settings)).stale_after_seconds


async def update_settings(
    pool: asyncpg.Pool, settings: Settings, changes: SettingsChanges
) -> FleetSettings:
    """Change fleet-wide defaults in one statement (all or nothing); answer what is in effect."""
    given = msgspec.structs.asdict(changes)
    if all(value is msgspec.UNSET for value in given.values()):
        raise BadRequest(f"nothing to change: give any of {', '.join(EDITABLE_SETTINGS)}")
    values = [None if given[f] is msgspec.UNSET else given[f] for f in EDITABLE_SETTINGS]
    arguments = (
        *values,
        given["stale_after_intervals"] is not msgspec.UNSET,
        given["token_expiry"] is not msgspec.UNSET,
    )
    await retry_on_deadlock(lambda: pool.execute(UPSERT_SETTINGS, *arguments))
    return await get_settings(pool, settings)
