"""A fleet of simulated clusters: enrol them, then send heartbeats every interval until stopped."""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence

from cluster_manager.fleet.client import ConnectorError, RequestRefusedError
from cluster_manager.fleet.cluster import SimulatedCluster
from cluster_manager.fleet.payload import DEFAULT_METRICS_BYTES

logger = logging.getLogger(__name__)

TokenFactory = Callable[[str], "str | Awaitable[str]"]
Tokens = Sequence[str] | TokenFactory
_FAILURES = (ConnectorError, OSError, ssl.SSLError, TimeoutError, ValueError)


class FleetStats:
    """Outcomes by request kind: ``counts[("heartbeat", "200")]``, ``("join", "409")`` ..."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def record(self, kind: str, outcome: str) -> None:
        """Count one outcome (an HTTP status, or the name of the error)."""
        self.counts[(kind, outcome)] += 1

    def successes(self, kind: str) -> int:
        """Requests of that kind answered with 200."""
        return self.counts[(kind, "200")]

    def failures(self, kind: str) -> int:
        """Requests of that kind that did not get a 200."""
        return sum(n for (k, outcome), n in self.counts.items() if k == kind and outcome != "200")

    def summary(self) -> str:
        """One line, e.g. ``join 200=3; heartbeat 200=120 403=1``."""
        kinds: dict[str, list[str]] = {}
        for (kind, outcome), count in sorted(self.counts.items()):
            kinds.setdefault(kind, []).append(f"{outcome}={count}")
        return "; ".join(f"{kind} {' '.join(parts)}" for kind, parts in kinds.items())


class Fleet:
    """N simulated clusters sharing one set of counters."""

    def __init__(
        self,
        count: int,
        *,
        prefix: str = "sim",
        interval: float = 60.0,
        jitter: float = 0.1,
        metrics_bytes: int = DEFAULT_METRICS_BYTES,
        hmac_join: bool = False,
        seed: int = 0,
        concurrency: int = 50,
        start_spread: float | None = None,
        hosts: Mapping[str, str] | None = None,
    ) -> None:
        """Create ``count`` clusters named ``<prefix>-0001`` ... (each with its own certificate).

        A cluster takes the name of the token it joins with, as the real client does. First
        heartbeats are spread over ``start_spread`` seconds (default: one interval); later ones
        come every ``interval`` seconds, give or take ``jitter`` of it. ``hosts`` maps the
        tokens' host names to IP addresses (tests; default: DNS).
        """
        self.interval = interval
        self.start_spread = interval if start_spread is None else start_spread
        self.jitter = jitter
        self.hmac_join = hmac_join
        self.stats = FleetStats()
        self._rng = random.Random(seed)  # noqa: S311 - a simulation
        self._limit = asyncio.Semaphore(concurrency)
        self._stopped = asyncio.Event()
        self.joined: list[SimulatedCluster] = []
        self.clusters = [
            SimulatedCluster(
                f"{prefix}-{i + 1:04d}",
                seed=f"{seed}-{i}",
                metrics_bytes=metrics_bytes,
                interval=interval,
                hosts=hosts,
            )
            for i in range(count)
        ]

    async def _call(
        self,
        kind: str,
        cluster: SimulatedCluster,
        action: Callable[[], Awaitable[tuple[int, bytes]]],
    ) -> bool:
        async with self._limit:
            try:
                status, _ = await action()
            except RequestRefusedError as error:
                logger.warning("%s of %s refused: %s", kind, cluster.name, error)
                self.stats.record(kind, str(error.status))
                return False
            except _FAILURES as error:
                logger.warning("%s of %s failed: %s", kind, cluster.name, error)
                self.stats.record(kind, type(error).__name__)
                return False
        self.stats.record(kind, str(status))
        return True

    async def enrol(self, tokens: Tokens) -> int:
        """Join every cluster, with one token each (a list, or a callable given the name).

        Returns how many joined.
        """
        if not callable(tokens) and len(tokens) != len(self.clusters):
            raise ValueError(f"{len(tokens)} tokens for {len(self.clusters)} clusters")

        async def join(index: int, cluster: SimulatedCluster) -> None:
            if callable(tokens):
                token = tokens(cluster.name)
                if inspect.isawaitable(token):
                    token = await token
            else:
                token = tokens[index]
            cluster.use_token(token)
            if await self._call("join", cluster, lambda: cluster.join(hmac=self.hmac_join)):
                self.joined.append(cluster)

        await asyncio.gather(*(join(i, c) for i, c in enumerate(self.clusters)))
        return len(self.joined)

    async def run(self) -> None:
        """Send heartbeats from every joined cluster every interval (jittered) until stopped."""
        self._stopped.clear()
        tasks = [asyncio.create_task(self._beat(c)) for c in self.joined]
        try:
            await self._stopped.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _beat(self, cluster: SimulatedCluster) -> None:
        await asyncio.sleep(self._rng.uniform(0, self.start_spread))  # spread the fleet out
        while True:
            await self._call("heartbeat", cluster, cluster.heartbeat)
            spread = self.interval * self.jitter
            await asyncio.sleep(max(0.0, self.interval + self._rng.uniform(-spread, spread)))

    def stop(self) -> None:
        """Make :meth:`run` return."""
        self._stopped.set()

    async def leave(self) -> int:
        """Make every joined cluster leave; return how many left."""
        results = await asyncio.gather(*(self._call("leave", c, c.leave) for c in self.joined))
        self.joined = [c for c, left in zip(self.joined, results, strict=True) if not left]
        return sum(results)


async def run_fleet(
    tokens: Tokens,
    *,
    count: int | None = None,
    interval: float = 60.0,
    metrics_bytes: int = DEFAULT_METRICS_BYTES,
    hmac_join: bool = False,
    seed: int = 0,
    leave_on_exit: bool = False,
    start_spread: float | None = None,
    started: Callable[[Fleet], None] | None = None,
) -> FleetStats:
    """Enrol a fleet and send heartbeats until cancelled; return its counters.

    ``tokens`` is a list of join tokens (one cluster each) or a callable that returns (or
    awaits) a token for a cluster name, then ``count`` says how many clusters. ``started`` is
    called with the :class:`Fleet` once it is enrolled (to read ``fleet.stats`` or call
    ``fleet.stop()``). ``start_spread=0`` makes every cluster report at once after joining.
    """
    if callable(tokens):
        if count is None:
            raise ValueError("count is needed when tokens is a callable")
    else:
        count = len(tokens)
    fleet = Fleet(
        count,
        interval=interval,
        metrics_bytes=metrics_bytes,
        hmac_join=hmac_join,
        seed=seed,
        start_spread=start_spread,
    )
    joined = await fleet.enrol(tokens)
    logger.info("fleet: %d of %d clusters joined", joined, count)
    if started is not None:
        started(fleet)
    try:
        await fleet.run()
    finally:
        if leave_on_exit:
            await asyncio.shield(fleet.leave())
    return fleet.stats
