"""Token-bucket rate limits, in memory, keyed by whatever the caller chooses."""

from __future__ import annotations

import time

from cluster_manager.errors import TooManyRequests


class RateLimiter:
    """Buckets of ``burst`` tokens refilled at ``rate`` per second, one bucket a key."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str, what: str = "requests") -> None:
        """Take one token for ``key`` or raise TooManyRequests with the wait in Retry-After."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            raise TooManyRequests(f"too many {what}, slow down", (1 - tokens) / self.rate)
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._prune(now)
        self._buckets[key] = (tokens - 1, now)

    def _prune(self, now: float) -> None:
        """Drop buckets that have refilled completely: they are the same as new ones."""
        full_after = self.burst / self.rate if self.rate > 0 else float("inf")
        for key in [k for k, (_, last) in self._buckets.items() if now - last >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # still full: the oldest half goes
            for key in list(self._buckets)[: self.max_keys // 2]:
                del self._buckets[key]
