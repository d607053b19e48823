"""Everything the management application stores on itself, as typed keys."""

from __future__ import annotations

from aiohttp import web

from cluster_manager.settings import Settings

SETTINGS = web.AppKey("management_settings", Settings)
