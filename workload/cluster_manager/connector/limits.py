"""The connector's rate limits, built once from settings, each refusal counted and logged.

Which bucket a request spends decides who can starve whom:

- ``probe``: requests without a client certificate (the clients' ``GET /`` probes, scanners).
  Any status answers a probe, so a refused probe costs a real client nothing.
- ``unverified``: work done before any proof of identity: joins, and certificates the identity
  cache does not know (each costs a database read).
- ``clusters``: the ceiling over requests of identified clusters. Only they spend it, so no
  anonymous flood can starve the fleet's heartbeats.
- per certificate: ``heartbeat`` and ``leave`` are separate buckets, so a burst of heartbeats
  never refuses the cluster's leave; ``join_client`` throttles guesses per TLS identity;
  ``tunnel`` bounds how often one cluster may (re)open its reverse tunnel.
- ``join_name``: per cluster name, charged only once the token's secret is proven, so junk
  requests naming a pending cluster cannot lock it out.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from aiohttp import web

from cluster_manager.errors import TooManyRequests
from cluster_manager.metrics import CONNECTOR_RATE_LIMITED
from cluster_manager.ratelimit import RateLimiter
from cluster_manager.settings import Settings

logger = logging.getLogger(__name__)

MAX_LOGGED_KEYS = 10_000


class RefusalLog:
    """Logs the first refusal of each (reason, key) per interval, then how many followed."""

    def __init__(self, interval: float, max_keys: int = MAX_LOGGED_KEYS) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def refused(self, reason: str, key: str, label: str) -> None:
        """Record one refusal; log it unless this key was logged less than an interval ago."""
        now = time.monotonic()
        entry = (reason, key)
        last, suppressed = self._seen.get(entry, (float("-inf"), 0))
        if now - last < self.interval:
            self._seen[entry] = (last, suppressed + 1)
            return
        if entry not in self._seen and len(self._seen) >= self.max_keys:
            self._prune(now)
        self._seen[entry] = (now, 0)
        # ascii() escapes control characters: a crafted name cannot forge a log line.
        logger.warning(
            "rate limited (%s) %s; %d more refused since the last report",
            reason,
            ascii(label[:160]),
            suppressed,
        )

    def _prune(self, now: float) -> None:
        for entry in [e for e, (last, _) in self._seen.items() if now - last >= self.interval]:
            del self._seen[entry]
        if len(self._seen) >= self.max_keys:  # all recent: forget the oldest half
            for entry in list(self._seen)[: self.max_keys // 2]:
                del self._seen[entry]


@dataclasses.dataclass(frozen=True)
class Limit:
    """One bucket family with the reason its refusals are counted and logged under."""

    reason: str
    buckets: RateLimiter
    log: RefusalLog

    def check(self, key: str, what: str, label: str | None = None) -> None:
        """Take a token for ``key`` or count, log (at most once per interval) and raise 429.

        ``label`` names the caller in the log (a cluster name, a fingerprint); never a secret.
        """
        try:
            self.buckets.check(key, what)
        except TooManyRequests:
            CONNECTOR_RATE_LIMITED.labels(self.reason).inc()
            self.log.refused(self.reason, key, label if label is not None else key)
            raise


@dataclasses.dataclass(frozen=True)
class ConnectorLimits:
    """Every bucket of the connector (see the module docstring)."""

    heartbeat: Limit
    leave: Limit
    join_client: Limit
    join_name: Limit
    clusters: Limit
    unverified: Limit
    probe: Limit
    tunnel: Limit = dataclasses.field(
        # The daemon redials every 10 s while no tunnel is open; twice that is never refused.
        default_factory=lambda: Limit("tunnel", RateLimiter(12 / 60, 10), RefusalLog(60.0))
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectorLimits:
        """Build the buckets the settings describe."""
        log = RefusalLog(settings.rate_limit_log_interval)
        per_minute = 1 / 60
        join_buckets = (settings.join_rate_per_minute * per_minute, settings.join_burst)
        return cls(
            heartbeat=Limit(
                "heartbeat",
                RateLimiter(
                    settings.heartbeat_rate_per_minute * per_minute, settings.heartbeat_burst
                ),
                log,
            ),
            leave=Limit(
                "leave",
                RateLimiter(settings.leave_rate_per_minute * per_minute, settings.leave_burst),
                log,
            ),
            join_client=Limit("join_client", RateLimiter(*join_buckets), log),
            join_name=Limit("join_name", RateLimiter(*join_buckets), log),
            clusters=Limit(
                "clusters",
                RateLimiter(settings.connector_rate_per_second, settings.connector_burst),
                log,
            ),
            unverified=Limit(
                "unverified",
                RateLimiter(settings.unverified_rate_per_second, settings.unverified_burst),
                log,
            ),
            probe=Limit(
                "probe", RateLimiter(settings.probe_rate_per_second, settings.probe_burst), log
            ),
        )


LIMITS = web.AppKey("limits", ConnectorLimits)
