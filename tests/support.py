"""Helpers for the workload tests (fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from cluster_manager.ports import unused_port
from cluster_manager.settings import Settings, render_config


def free_port() -> int:
    """A TCP port nobody holds, below the ephemeral range, never handed out before (see ports)."""
    return unused_port()


def with_database(dsn: str, name: str) -> str:
    """The same server, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def table_rows(pool: asyncpg.Pool) -> dict[str, list[dict[str, object]]]:
    """Every row of the manager's tables, to show that a refusal changed nothing."""
    tables = (
        "remote_cluster_tokens",
        "remote_clusters",
        "remote_cluster_details",
        "fleet_settings",
    )
    return {
        table: [dict(r) for r in await pool.fetch(f"SELECT * FROM {table} ORDER BY 1")]  # noqa: S608
        for table in tables
    }


def write_config(path: Path, settings: Settings) -> Path:
    """Write settings as the TOML file `cluster-manager --config` reads."""
    defaults = Settings()
    values = {
        field: getattr(settings, field)
        for field in settings.__struct_fields__
        if getattr(settings, field) != getattr(defaults, field)
    }
    path.write_text(render_config(values))
    return path
