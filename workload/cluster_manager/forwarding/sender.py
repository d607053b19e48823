"""The forwarder: accepted heartbeats -> worker process -> remote-write requests per destination.

``submit`` only appends to a bounded queue (the heartbeat handler never waits for it). A
converter task takes batches of queued heartbeats and has a worker process parse and encode
them (:func:`~cluster_manager.forwarding.series.build_batch`, fed as one buffer through a
socket: :mod:`cluster_manager.forwarding.worker`), so the event loop serving heartbeats does
none of that CPU work. Each destination has its own backlog of encoded requests
and its own sender task, which posts them in order and retries a failed one with exponential
backoff (capped, with jitter), so one slow destination does not hold back another.

Each heartbeat's conversion has a budget of CPU time and characters
(:class:`~cluster_manager.forwarding.series.ConversionLimits`): what goes over it is not
forwarded and is counted in ``mcm_forward_metrics_cut_heartbeats_total``.

Bounds, both dropping the OLDEST (newer data matters more to a dashboard) and counting drops in
``mcm_forward_dropped_heartbeats_total``: the queue of heartbeats waiting for conversion (count
and characters of metrics text), and each destination's backlog of encoded requests (bytes).
A destination's answer 2xx is success, 429 or 5xx or no answer is retried, any other status
drops the request as rejected (Prometheus answers 400 to samples it will never take).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import ssl
import time
from collections import deque
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp

from cluster_manager import metrics
from cluster_manager.forwarding import remote_write
from cluster_manager.forwarding.series import (
    CONVERSION_LIMITS,
    Batch,
    ConversionLimits,
    Submission,
)
from cluster_manager.forwarding.worker import ConversionFailed, WorkerDied, WorkerProcess
from cluster_manager.heartbeats import Heartbeat

logger = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ForwardingLimits:
    """How much the forwarder holds, batches and retries."""

    max_queued_heartbeats: int = 1000
    max_queued_chars: int = 64 * MIB  # metrics text waiting for conversion
    max_batch_heartbeats: int = 32
    max_batch_chars: int = 2 * MIB  # metrics text per remote-write request
    batch_linger: float = 0.25  # seconds a batch waits to fill (fewer, fuller requests)
    max_backlog_bytes: int = 64 * MIB  # encoded requests waiting, per destination
    request_timeout: float = 30.0
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    conversion: ConversionLimits = CONVERSION_LIMITS  # per heartbeat, and the worker's cache


LIMITS = ForwardingLimits()


def display_url(url: str) -> str:
    """The URL without credentials or query, for labels and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def client_tls(trusted_ca_file: str) -> ssl.SSLContext:
    """System CAs, plus the configured CA file (COS with its own CA)."""
    context = ssl.create_default_context()
    if trusted_ca_file:
        try:
            context.load_verify_locations(cafile=trusted_ca_file)
        except (OSError, ssl.SSLError) as error:
            # Forwarding is optional: heartbeats go on, sending fails and is counted.
            logger.error("cannot read trusted_ca_file %s: %s", trusted_ca_file, error)
    return context


class Destination:
    """One remote-write URL: its backlog and its sender task."""

    def __init__(self, url: str, limits: ForwardingLimits) -> None:
        self.url = url
        self.label = display_url(url)
        self.limits = limits
        self.backlog: deque[Batch] = deque()
        self.backlog_bytes = 0
        self.in_flight: Batch | None = None
        self._wake = asyncio.Event()
        self._failing = False

    def enqueue(self, batch: Batch) -> None:
        """Queue a request; drop the oldest queued ones while over the byte bound."""
        self.backlog.append(batch)
        self.backlog_bytes += len(batch.payload)
        while self.backlog_bytes > self.limits.max_backlog_bytes and len(self.backlog) > 1:
            dropped = self.backlog.popleft()
            self.backlog_bytes -= len(dropped.payload)
            metrics.FORWARD_DROPPED.labels("backlog_full").inc(dropped.heartbeats)
        self._wake.set()

    def pending_bytes(self) -> int:
        """Bytes queued and in flight."""
        return self.backlog_bytes + (len(self.in_flight.payload) if self.in_flight else 0)

    def drop_all(self, reason: str) -> int:
        """Forget every pending request; return how many heartbeats they carried."""
        batches = list(self.backlog) + ([self.in_flight] if self.in_flight else [])
        self.backlog.clear()
        self.backlog_bytes = 0
        self.in_flight = None
        count = sum(batch.heartbeats for batch in batches)
        if count:
            metrics.FORWARD_DROPPED.labels(reason).inc(count)
        return count

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Send queued requests in order, forever; retry failures with backoff."""
        backoff = self.limits.initial_backoff
        while True:
            if self.in_flight is None:
                if not self.backlog:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                self.in_flight = self.backlog.popleft()
                self.backlog_bytes -= len(self.in_flight.payload)
            outcome = await self._post(session, self.in_flight)
            metrics.FORWARD_REQUESTS.labels(self.label, outcome).inc()
            if outcome == "failed":
                delay = backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
                backoff = min(backoff * 2, self.limits.max_backoff)
                await asyncio.sleep(delay)
                continue
            if outcome == "sent":
                metrics.FORWARD_SERIES.labels(self.label).inc(self.in_flight.series)
            else:
                metrics.FORWARD_DROPPED.labels("rejected").inc(self.in_flight.heartbeats)
            self.in_flight = None
            backoff = self.limits.initial_backoff

    def _log_failure(self, detail: object) -> None:
        # Once per outage at warning level; the retries every few seconds only at debug level.
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        logger.log(level, "remote write to %s failed, will retry: %s", self.label, detail)

    async def _post(self, session: aiohttp.ClientSession, batch: Batch) -> str:
        try:
            async with session.post(
                self.url, data=batch.payload, headers=remote_write.HEADERS
            ) as response:
                if 200 <= response.status < 300:
                    if self._failing:
                        logger.info("remote write to %s works again", self.label)
                        self._failing = False
                    return "sent"
                text = (await response.content.read(300)).decode(errors="replace")
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            self._log_failure(error or type(error).__name__)
            return "failed"
        if response.status == 429 or response.status >= 500:
            self._log_failure(f"{response.status} {text.strip()}")
            return "failed"
        logger.error(
            "remote write to %s rejected %s heartbeats: %s %s",
            self.label,
            batch.heartbeats,
            response.status,
            text.strip(),
        )
        return "rejected"


class Forwarder:
    """Forward accepted heartbeats to remote-write destinations; a no-op without any."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        tls: ssl.SSLContext | None = None,
        limits: ForwardingLimits | None = None,
    ) -> None:
        self.limits = limits or LIMITS
        self.destinations = [Destination(url, self.limits) for url in urls]
        self._tls = tls
        self._queue: deque[Submission] = deque()
        self._queued_chars = 0
        self._wake = asyncio.Event()
        self._full = asyncio.Event()  # a whole batch is queued
        self._tasks: list[asyncio.Task[None]] = []
        self._worker: WorkerProcess | None = None
        self._session: aiohttp.ClientSession | None = None
        self._last_cut_log = -math.inf

    @property
    def enabled(self) -> bool:
        """Whether any destination is configured."""
        return bool(self.destinations)

    @property
    def queued_heartbeats(self) -> int:
        """Heartbeats waiting to be converted."""
        return len(self._queue)

    def backlog_bytes(self) -> dict[str, int]:
        """Encoded bytes waiting to be sent, by destination."""
        return {d.label: d.pending_bytes() for d in self.destinations}

    def submit(self, cluster: str, heartbeat: Heartbeat) -> None:
        """Queue an accepted heartbeat; never blocks, never raises."""
        if not self.destinations:
            return
        try:
            item = Submission(cluster, heartbeat, int(time.time() * 1000))
            self._queue.append(item)
            self._queued_chars += item.size
            limits = self.limits
            while len(self._queue) > 1 and (
                len(self._queue) > limits.max_queued_heartbeats
                or self._queued_chars > limits.max_queued_chars
            ):
                self._queued_chars -= self._queue.popleft().size
                metrics.FORWARD_DROPPED.labels("queue_full").inc()
            self._wake.set()
            if self._batch_is_full():
                self._full.set()
        except Exception:  # the heartbeat is stored already; forwarding must not fail it
            logger.exception("cannot queue the heartbeat of %s for forwarding", cluster)

    def _batch_is_full(self) -> bool:
        return (
            len(self._queue) >= self.limits.max_batch_heartbeats
            or self._queued_chars >= self.limits.max_batch_chars
        )

    async def _linger(self) -> None:
        """Give a batch that is not full a moment to fill: per request costs are paid once."""
        if self._batch_is_full() or self.limits.batch_linger <= 0:
            return
        self._full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self.limits.batch_linger)

    def _take_batch(self) -> list[Submission]:
        batch = [self._queue.popleft()]
        chars = batch[0].size
        while (
            self._queue
            and len(batch) < self.limits.max_batch_heartbeats
            and chars + self._queue[0].size <= self.limits.max_batch_chars
        ):
            item = self._queue.popleft()
            batch.append(item)
            chars += item.size
        self._queued_chars -= chars
        return batch

    def _log_cut(self, clusters: tuple[str, ...]) -> None:
        # At most once a minute: a cluster sending garbage must not fill the log either.
        now = time.monotonic()
        if now - self._last_cut_log < 60:
            return
        self._last_cut_log = now
        logger.warning(
            "metrics of %s heartbeats cut short by the conversion budget, e.g. from %r",
            len(clusters),
            clusters[0],
        )

    async def _convert(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._linger()
            submissions = self._take_batch()
            worker = self._worker
            assert worker is not None
            try:
                batch = await worker.convert(submissions, self.limits.conversion)
            except WorkerDied as error:
                logger.error("the forwarding worker died (%s); starting a new one", error)
                metrics.FORWARD_DROPPED.labels("conversion_failed").inc(len(submissions))
                await worker.stop()
                await worker.start()
                continue
            except ConversionFailed as error:
                logger.error(
                    "cannot convert %s heartbeats for forwarding: %s", len(submissions), error
                )
                metrics.FORWARD_DROPPED.labels("conversion_failed").inc(len(submissions))
                continue
            except Exception:
                logger.exception("cannot convert %s heartbeats for forwarding", len(submissions))
                metrics.FORWARD_DROPPED.labels("conversion_failed").inc(len(submissions))
                continue
            metrics.FORWARD_BAD_LINES.inc(batch.bad_lines)
            if batch.cut:
                metrics.FORWARD_CUT.inc(len(batch.cut))
                self._log_cut(batch.cut)
            metrics.FORWARD_CPU.inc(batch.cpu_seconds)
            for destination in self.destinations:
                destination.enqueue(batch)

    async def start(self) -> None:
        """Start the worker process and the tasks (nothing without destinations)."""
        if not self.destinations:
            return
        self._worker = WorkerProcess()
        await self._worker.start()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._tls or True, limit=len(self.destinations)),
            timeout=aiohttp.ClientTimeout(total=self.limits.request_timeout),
        )
        self._tasks = [asyncio.create_task(self._convert(), name="forwarding-converter")]
        self._tasks += [
            asyncio.create_task(d.run(self._session), name=f"forwarding-{d.label}")
            for d in self.destinations
        ]
        metrics.track_forwarder(self)
        logger.info(
            "forwarding heartbeats by remote write to %s",
            ", ".join(d.label for d in self.destinations),
        )

    async def stop(self) -> None:
        """Cancel the tasks and count what was never sent."""
        metrics.untrack_forwarder(self)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        unsent = len(self._queue)
        if unsent:
            metrics.FORWARD_DROPPED.labels("shutdown").inc(unsent)
        self._queue.clear()
        self._queued_chars = 0
        for destination in self.destinations:
            unsent += destination.drop_all("shutdown")
        if unsent:
            logger.warning("stopping with %s heartbeats not forwarded", unsent)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._worker is not None:
            worker, self._worker = self._worker, None
            await worker.stop()
