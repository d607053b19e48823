"""One process's file descriptors: floods neither starve the Connector nor fill the log.

Each test runs ``cluster-manager serve`` in a child process whose open-files limit is lowered
to ``LIMIT`` (soft and hard, so the server cannot raise it), floods ports with connections that
never send a byte, and keeps sending heartbeats from an enrolled cluster.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster_manager import tokens
from cluster_manager.fleet import ConnectorError, SimulatedCluster
from cluster_manager.settings import Settings
from conftest import ServerProcess, write_config

LIMIT = 64  # open files; each server's cap is its share of this, with a floor
UNTHROTTLED = {"heartbeat_rate_per_minute": 60_000.0, "heartbeat_burst": 10_000}
MAX_LOG_BYTES = 20_000


class LimitedServerProcess(ServerProcess):
    """`cluster-manager serve` with its open-files limit set to ``(soft, hard)``."""

    def __init__(self, settings: Settings, config: Path, soft: int, hard: int) -> None:
        super().__init__(settings, config)
        self.limits = (soft, hard)

    def in_child(self) -> None:
        """Set the open-files limit before ``serve`` starts."""
        resource.setrlimit(resource.RLIMIT_NOFILE, self.limits)

    def full_log(self) -> str:
        """Everything the process wrote."""
        return self.config.with_suffix(".log").read_text(errors="replace")


@pytest.fixture
def limited_server(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[Callable[..., LimitedServerProcess]]:
    """Start `serve` children with a lowered open-files limit."""
    started: list[LimitedServerProcess] = []

    def start(soft: int = LIMIT, hard: int = LIMIT, **overrides: object) -> LimitedServerProcess:
        settings = make_settings(**{"workers": 1, **UNTHROTTLED, **overrides})
        config = write_config(tmp_path / f"limited-{len(started)}.toml", settings)
        unit = LimitedServerProcess(settings, config, soft, hard)
        started.append(unit)
        unit.start()
        return unit

    yield start
    for unit in started:
        unit.stop()


async def enrolled(pool, settings: Settings) -> SimulatedCluster:
    token, _ = await tokens.create_token(pool, settings, "edge-1")
    cluster = SimulatedCluster("edge-1", timeout=3)
    await cluster.join(token.encode())
    return cluster


async def heartbeat_status(cluster: SimulatedCluster) -> int | str:
    try:
        status, _ = await cluster.heartbeat(check=False)
    except (ConnectorError, OSError, TimeoutError) as error:
        return type(error).__name__
    return status


async def flood(port: int, count: int) -> list[asyncio.StreamWriter]:
    """Open up to ``count`` connections that send nothing, and keep them open."""

    async def one() -> asyncio.StreamWriter | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
        except (OSError, TimeoutError):
            return None  # the backlog is full: the kernel drops the SYN
        return writer

    opened = await asyncio.gather(*(one() for _ in range(count)))
    return [writer for writer in opened if writer is not None]


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def test_flood_on_management_does_not_starve_heartbeats(limited_server, pool):
    # A long handshake timeout: the server holds every flood connection it accepted.
    unit = limited_server(tls_handshake_timeout=60.0)
    cluster = await enrolled(pool, unit.settings)
    assert await heartbeat_status(cluster) == 200

    held = await flood(unit.settings.management_port, 150)
    await asyncio.sleep(0.5)
    statuses = [await heartbeat_status(cluster) for _ in range(10)]
    files = open_files(unit.process.pid)
    for writer in held:
        writer.close()

    assert statuses == [200] * 10
    assert files < LIMIT
    unit.stop()
    log = unit.full_log()
    assert "management: at its cap of 16 open connections" in log
    assert "Traceback" not in log


async def test_exhausted_descriptors_recover_by_themselves_with_a_small_log(limited_server, pool):
    unit = limited_server(tls_handshake_timeout=3.0)
    cluster = await enrolled(pool, unit.settings)
    assert await heartbeat_status(cluster) == 200
    settings = unit.settings
    ports = (settings.management_port, settings.connector_port, settings.ops_port)

    # The attacker never closes these: the server must drop them by itself.
    held = [writer for port in ports for writer in await flood(port, 120)]
    during = await heartbeat_status(cluster)
    started = time.monotonic()
    statuses = []
    while time.monotonic() - started < 60:
        statuses.append(await heartbeat_status(cluster))
        if statuses[-1] == 200:
            break
        await asyncio.sleep(0.5)
    recovered_after = time.monotonic() - started
    for writer in held:
        writer.close()

    assert statuses[-1] == 200, statuses
    assert recovered_after < 45, (during, statuses)
    unit.stop()
    log = unit.full_log()
    assert len(log.encode()) < MAX_LOG_BYTES, log[-3000:]
    assert "Traceback" not in log
    assert "at its cap" in log or "out of file descriptors" in log


def test_soft_open_files_limit_is_raised_to_the_hard_one(limited_server):
    unit = limited_server(soft=LIMIT, hard=4 * LIMIT)
    limits = Path(f"/proc/{unit.process.pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert line.split()[3:5] == [str(4 * LIMIT)] * 2
    assert f"open files limit raised from {LIMIT} to {4 * LIMIT}" in unit.full_log()
