"""A real Prometheus (Debian's ``prometheus`` package) for tests, and reading /metrics pages.

The server runs with ``--web.enable-remote-write-receiver`` on a free 127.0.0.1 port with a
temporary storage directory and no scrape jobs; it can be stopped and started again on the same
port and storage (an outage).
"""

from __future__ import annotations

import asyncio
import http.client
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
from cluster_manager.processes import stop_process
from prometheus_client.parser import text_string_to_metric_families

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class PrometheusServer:
    """``prometheus`` as a child process."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.config = directory / "prometheus.yml"
        self.config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
        self.log = directory / "prometheus.log"

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        """The remote-write receiver."""
        return f"{self.url}/api/v1/write"

    def start(self, timeout: float = 60) -> None:
        """Start and wait until /-/ready answers 200."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-remote-write-receiver",
                    "--web.console.templates=/nonexistent",
                    "--web.console.libraries=/nonexistent",
                ],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.tail()}")
            if _ready(self.port):
                return
            time.sleep(0.1)
        raise TimeoutError(f"prometheus not ready:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM and wait (Prometheus writes its WAL on the way out)."""
        stop_process(self.process, 30)
        self.process = None

    def tail(self) -> str:
        """The end of its log."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    async def query(self, promql: str) -> list[dict]:
        """Run an instant query; return the result vector."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/query", params={"query": promql}) as r,
        ):
            body = await r.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    async def wait_for(self, promql: str, *, count: int = 1, within: float = 60) -> list[dict]:
        """Poll until the query returns at least ``count`` series."""
        deadline = time.monotonic() + within
        result: list[dict] = []
        while time.monotonic() < deadline:
            result = await self.query(promql)
            if len(result) >= count:
                return result
            await asyncio.sleep(0.2)
        raise AssertionError(f"{promql} returned {result} after {within} s\n{self.tail()}")


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/-/ready")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def parse_samples(text: str) -> Samples:
    """Samples of a Prometheus text page, keyed by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(port: int) -> Samples:
    """GET /metrics on an ops port and parse it."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
        assert response.status == 200, text
        assert response.headers["Content-Type"].startswith("text/plain"), response.headers
    return parse_samples(text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
