"""The connector's rate limits, built once from settings."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from cluster_manager.ratelimit import RateLimiter
from cluster_manager.settings import Settings


@dataclasses.dataclass(frozen=True)
class ConnectorLimits:
    """Per-certificate, per-claimed-name and global buckets."""

    per_cluster: RateLimiter
    per_join_name: RateLimiter
    everything: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectorLimits:
        """Build the buckets the settings describe."""
        return cls(
            per_cluster=RateLimiter(
                settings.heartbeat_rate_per_minute / 60, settings.heartbeat_burst
            ),
            per_join_name=RateLimiter(settings.join_rate_per_minute / 60, settings.join_burst),
            everything=RateLimiter(settings.connector_rate_per_second, settings.connector_burst),
        )


LIMITS = web.AppKey("limits", ConnectorLimits)
