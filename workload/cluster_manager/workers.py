"""Several server processes on one unit: how many, their ports, and their supervisor.

``serve --workers N`` (setting ``workers``; 0 means one per CPU available to the container)
starts N copies of the servers. They share the Management and Connector ports with
``SO_REUSEPORT``: the kernel spreads new connections over them, so each TLS handshake, the
dominant cost of a heartbeat, runs on whichever core is free. Every process is to the rest of
the unit what another unit is: its own database pools, identity cache and LISTEN connections
(revocations, identity, tunnels), so nothing a unit guarantees across units is lost across
processes.

What is per process, not shared:

- the ops port: worker 0 answers on ``ops_port`` (probes, Prometheus); every other worker on
  a port of 127.0.0.1 the system chooses, which it writes into an array the supervisor
  shares with all of them; worker 0's ``/metrics`` serves every worker's metrics, labelled
  ``worker`` (:mod:`cluster_manager.worker_metrics`), so Prometheus scrapes one target a unit;
- the unit-to-unit channel: worker ``k`` listens on ``internal_port + k`` and registers
  ``host:internal_port + k`` as the address of the tunnels it holds, so a request for a tunnel
  held by another process of this unit goes to that process, as it would to another unit.

Database connections per unit: see :func:`cluster_manager.db.pool_sizes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import signal
import time
from collections.abc import MutableSequence
from pathlib import Path

from cluster_manager import db, logs
from cluster_manager.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
CFS_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")  # cgroup v1
CFS_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
MAX_WORKERS = 64
PR_SET_PDEATHSIG = 1  # prctl(2)


def _quota(cpu_max: Path, quota_file: Path, period_file: Path) -> int | None:
    """Whole CPUs the cgroup's CFS quota allows (rounded up), or None without a quota."""
    try:
        if cpu_max.exists():
            quota, period = cpu_max.read_text().split()[:2]
        else:
            quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
    except (OSError, ValueError):
        return None
    if quota in ("max", "-1") or not quota.lstrip("-").isdigit() or not period.isdigit():
        return None
    if int(quota) <= 0 or int(period) <= 0:
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def available_cpus(
    cpu_max: Path = CPU_MAX, quota_file: Path = CFS_QUOTA, period_file: Path = CFS_PERIOD
) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup's CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _quota(cpu_max, quota_file, period_file)
    return max(1, min(cpus, quota) if quota else cpus)


def count(settings: Settings) -> int:
    """The number of server processes: ``workers``, or the available CPUs when it is 0."""
    if settings.workers < 0:
        raise SettingsError("workers: must be 0 (one per available CPU) or more")
    return min(settings.workers or available_cpus(), MAX_WORKERS)


def for_worker(settings: Settings, index: int, workers: int) -> Settings:
    """Settings of worker ``index`` of ``workers``: its own ops and internal ports."""
    if workers > 1:
        for name in ("management_port", "connector_port", "ops_port"):
            if getattr(settings, name) == 0:
                raise SettingsError(f"{name}: several workers need a fixed port, not 0")
        if settings.internal_key_file:
            internal = range(settings.internal_port, settings.internal_port + workers)
            if settings.internal_port == 0:
                raise SettingsError("internal_port: several workers need a fixed port, not 0")
            if internal.stop > 65536:
                raise SettingsError(f"internal_port: {workers} workers need {workers} ports")
            for name in ("management_port", "connector_port", "ops_port"):
                if getattr(settings, name) in internal:
                    raise SettingsError(
                        f"internal_port: {workers} workers use ports {internal.start} to"
                        f" {internal.stop - 1}, which holds {name}"
                    )
    host, _, port = settings.internal_address.rpartition(":")
    changes: dict[str, object] = {"workers": workers}
    if index:
        changes.update(
            ops_host="127.0.0.1",  # read by worker 0 only
            ops_port=0,
            internal_port=settings.internal_port + index,
            internal_address=f"{host}:{int(port) + index}",
        )
    return settings.replace(**changes)


def _run_worker(settings: Settings, index: int, ops_ports: MutableSequence[int]) -> None:
    """A worker process's body (started by :func:`run`): serve until SIGTERM.

    ``ops_ports`` is shared by every worker: each writes the ops port it bound at its index.
    """
    from cluster_manager.server import serve

    _stop_with_parent()
    logs.configure(settings.log_level)
    asyncio.run(serve(settings, worker=index, ops_ports=ops_ports))


def _stop_with_parent() -> None:
    """Have the kernel send SIGTERM to this worker when the supervisor dies (even by SIGKILL).

    Otherwise an orphaned worker would keep serving on the shared ports beside the workers of
    the restarted service.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def run(settings: Settings) -> int:
    """Serve with ``count(settings)`` processes; return the exit status.

    One worker serves in this process. Several are children of this one, which migrates the
    database once, then waits: SIGTERM or SIGINT stops them all, and a worker that exits stops
    the others too (Pebble then restarts the service), so the unit never serves half its ports.
    """
    from cluster_manager.server import serve

    workers = count(settings)
    if workers == 1:
        asyncio.run(serve(for_worker(settings, 0, 1)))
        return 0
    settings_list = [for_worker(settings, index, workers) for index in range(workers)]
    asyncio.run(db.migrate(settings.database_dsn))
    context = multiprocessing.get_context("spawn")
    stopping: list[int] = []  # the signal received; a plain flag, safe in a signal handler
    ops_ports = context.Array("i", workers, lock=False)
    processes = [
        context.Process(
            target=_run_worker,
            args=(worker, index, ops_ports),
            name=f"worker-{index}",
            daemon=False,
        )
        for index, worker in enumerate(settings_list)
    ]

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        # Worker 0 first: once it holds the unit's fixed ports, the loopback ports the system
        # picks for the others' ops servers cannot be one of them.
        processes[0].start()
        while not ops_ports[0] and processes[0].is_alive() and not stopping:
            time.sleep(0.05)
        for process in processes[1:]:
            process.start()
        logger.info("serving with %d worker processes", workers)
        while not stopping:
            time.sleep(0.2)
            dead = [p for p in processes if not p.is_alive()]
            if dead:
                logger.error(
                    "worker %s exited with status %s; stopping the others",
                    dead[0].name,
                    dead[0].exitcode,
                )
                status = 1
                break
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(15)
            if process.is_alive():
                process.kill()
                process.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status
