"""The load generator: worker processes, each an asyncio loop driving its share of the clusters.

Each heartbeat is a real client's: probe connection, pin check, pinned mutual-TLS connection
(two full handshakes, no resumption). Payloads are generated before the clock starts and TLS
contexts are cached per cluster, so a worker spends its CPU on the protocol, not on setup.

``rate`` switches a load to open loop: heartbeats at a fixed rate, however slowly the server
answers (the fleet's timers do not wait either), for latency at a given load.

A worker obeys commands sent over a pipe: ``setup``, ``join``, ``load`` and ``quit``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import multiprocessing
import ssl
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from cluster_manager.fleet.client import ConnectorError
from cluster_manager.fleet.cluster import SimulatedCluster

FAILURES = (ConnectorError, OSError, ssl.SSLError, TimeoutError)
MAX_IN_FLIGHT = 2000  # open loop: heartbeats pending at once before new ones are skipped
MAX_WAIT = 30.0  # open loop: seconds to wait, after the window, for heartbeats due in it


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What one worker simulates."""

    names: tuple[str, ...]
    metrics_bytes: int
    concurrency: int


@dataclasses.dataclass
class LoadResult:
    """What one worker saw inside the measuring window."""

    outcomes: collections.Counter[str]
    latencies: list[float]  # seconds, successful heartbeats only
    cpu_seconds: float  # this worker's CPU inside the window


class Worker:
    """The clusters of one process and their pre-generated payloads."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.clusters = [
            SimulatedCluster(name, metrics_bytes=spec.metrics_bytes) for name in spec.names
        ]
        self.bodies = [cluster.status.next_body() for cluster in self.clusters]

    async def join(self, tokens: list[str]) -> collections.Counter[str]:
        """Enrol every cluster with its token; count the outcomes."""
        limit = asyncio.Semaphore(self.spec.concurrency)
        outcomes: collections.Counter[str] = collections.Counter()

        async def join(cluster: SimulatedCluster, token: str) -> None:
            async with limit:
                outcomes[await _outcome(cluster.join(token, check=False))] += 1

        await asyncio.gather(*(join(c, t) for c, t in zip(self.clusters, tokens, strict=True)))
        return outcomes

    async def load(
        self, tokens: list[str], start_at: float, end_at: float, rate: float | None = None
    ) -> LoadResult:
        """Heartbeat as fast as ``concurrency`` lanes allow; measure in [start_at, end_at].

        With ``rate`` (heartbeats per second), open loop instead: see :meth:`load_at_rate`.
        """
        for cluster, token in zip(self.clusters, tokens, strict=True):
            cluster.use_token(token)
        if rate is not None:
            return await self.load_at_rate(start_at, end_at, rate)
        result = LoadResult(collections.Counter(), [], 0.0)
        turns = itertools.count()

        async def lane() -> None:
            while time.time() < end_at:
                index = next(turns) % len(self.clusters)
                began = time.perf_counter()
                outcome = await _outcome(self.clusters[index].heartbeat(self.bodies[index]))
                ended = time.time()
                if start_at <= ended <= end_at:
                    result.outcomes[outcome] += 1
                    if outcome == "200":
                        result.latencies.append(time.perf_counter() - began)

        async def clock() -> None:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            cpu = time.process_time()
            await asyncio.sleep(max(0.0, end_at - time.time()))
            result.cpu_seconds = time.process_time() - cpu

        await asyncio.gather(clock(), *(lane() for _ in range(self.spec.concurrency)))
        return result

    async def load_at_rate(self, start_at: float, end_at: float, rate: float) -> LoadResult:
        """Open loop: start a heartbeat every ``1 / rate`` seconds, whatever the answers do.

        A slow server cannot slow the senders down (as a fleet's timers would not), so the
        latencies include the queueing a fixed rate causes. Each latency runs from the moment
        the heartbeat was due, so a late start of the generator itself counts against the
        server, never for it. Heartbeats due inside the window are counted, waited for up to
        ``MAX_WAIT`` seconds after it; more than ``MAX_IN_FLIGHT`` at once are counted as
        ``overrun`` rather than started.
        """
        result = LoadResult(collections.Counter(), [], 0.0)
        tasks: set[asyncio.Task[None]] = set()
        turns = itertools.count()
        interval = 1.0 / rate
        loop = asyncio.get_running_loop()
        # Clock offset: wall-clock window edges, monotonic loop time for the schedule.
        offset = time.time() - loop.time()
        first = max(loop.time(), start_at - offset - 2.0)  # warm up 2 s before the window

        async def one(due: float) -> None:
            index = next(turns) % len(self.clusters)
            outcome = await _outcome(self.clusters[index].heartbeat(self.bodies[index]))
            wall_due = due + offset
            if start_at <= wall_due <= end_at:
                result.outcomes[outcome] += 1
                if outcome == "200":
                    result.latencies.append(loop.time() - due)

        cpu = 0.0
        for sent in itertools.count():
            due = first + sent * interval
            if due + offset > end_at:
                break
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if cpu == 0.0 and due + offset >= start_at:
                cpu = time.process_time()
            if len(tasks) >= MAX_IN_FLIGHT:
                if due + offset >= start_at:
                    result.outcomes["overrun"] += 1
                continue
            task = asyncio.create_task(one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        result.cpu_seconds = time.process_time() - cpu
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=MAX_WAIT)
            for task in late:
                task.cancel()
                result.outcomes["late"] += 1
        return result


async def _outcome(request: Any) -> str:
    try:
        status, _ = await request
    except FAILURES as error:
        return type(error).__name__
    return str(status)


class WorkerFailedError(RuntimeError):
    """A worker process raised; carries its traceback."""


def worker_main(connection: Connection, spec: WorkerSpec) -> None:
    """Entry point of a worker process."""
    worker: Worker | None = None
    while True:
        command, *args = connection.recv()
        try:
            if command == "setup":
                worker = Worker(spec)
                reply: Any = sum(map(len, worker.bodies)) / max(1, len(worker.bodies))
            elif command == "join" and worker is not None:
                reply = asyncio.run(worker.join(*args))
            elif command == "load" and worker is not None:
                reply = asyncio.run(worker.load(*args))
            else:
                connection.close()
                return
        except Exception:
            reply = WorkerFailedError(traceback.format_exc())
        connection.send(reply)


class Workers:
    """The worker processes, driven together."""

    def __init__(
        self, names: list[str], processes: int, metrics_bytes: int, concurrency: int
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.shares = [names[i::processes] for i in range(processes)]
        self.pipes: list[Connection] = []
        self.processes = []
        for share in self.shares:
            parent, child = context.Pipe()
            spec = WorkerSpec(tuple(share), metrics_bytes, concurrency)
            process = context.Process(target=worker_main, args=(child, spec), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def _send(self, command: str, *per_worker: list[Any], shared: tuple = ()) -> None:
        for index, pipe in enumerate(self.pipes):
            pipe.send((command, *(arg[index] for arg in per_worker), *shared))

    def _receive(self) -> list[Any]:
        replies = [pipe.recv() for pipe in self.pipes]
        for reply in replies:
            if isinstance(reply, WorkerFailedError):
                raise reply
        return replies

    def _all(self, command: str, *per_worker: list[Any], shared: tuple = ()) -> list[Any]:
        self._send(command, *per_worker, shared=shared)
        return self._receive()

    def setup(self) -> float:
        """Create the clusters and their payloads; return the mean payload size in bytes."""
        sizes = self._all("setup")
        return sum(sizes) / len(sizes)

    def split(self, tokens: dict[str, str]) -> list[list[str]]:
        """The tokens of each worker's clusters, in order."""
        return [[tokens[name] for name in share] for share in self.shares]

    def join(self, tokens: dict[str, str]) -> collections.Counter[str]:
        """Enrol every cluster; return the outcomes."""
        total: collections.Counter[str] = collections.Counter()
        for outcomes in self._all("join", self.split(tokens)):
            total.update(outcomes)
        return total

    def start_load(
        self, tokens: dict[str, str], start_at: float, end_at: float, rate: float | None = None
    ) -> None:
        """Start the load against the servers the tokens point at; measure in the window.

        ``rate``: heartbeats per second in all, shared by the processes (open loop); None: as
        fast as the lanes go.
        """
        share = rate / len(self.pipes) if rate is not None else None
        self._send("load", self.split(tokens), shared=(start_at, end_at, share))

    def finish_load(self) -> list[LoadResult]:
        """Wait for the workers' results."""
        return self._receive()

    def close(self) -> None:
        """Stop the workers."""
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("quit",))
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
