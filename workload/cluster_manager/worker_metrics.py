"""One ``/metrics`` for a unit of several worker processes (see :mod:`cluster_manager.workers`).

Each worker keeps its own counters and answers on its own ops port. Prometheus scrapes one
target a unit, worker 0 on ``ops_port``, which reads the others' metrics from their ports
(``?worker=own``: only the answering worker's) and serves them all, each sample labelled
``worker="k"``, so sums over a unit stay right. A worker that does not
answer within the timeout is left out of that scrape and logged; the others are still served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Sequence

import aiohttp
import prometheus_client
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger(__name__)

OWN_ONLY = "own"  # value of the ``worker`` query parameter asking for one worker's metrics
TIMEOUT = 2.0  # seconds to wait for another worker's metrics
MAX_BYTES = 16 * 1024 * 1024  # a worker's metrics larger than this are left out


class _Families:
    """A registry-like holder of parsed families, for ``generate_latest``."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        """The families, as a collector would yield them."""
        yield from self._families


def merge(texts: dict[int, str]) -> bytes:
    """Several workers' exposition texts as one, each sample labelled with its worker."""
    merged: dict[str, Metric] = {}
    for worker, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                target.samples.append(
                    sample._replace(labels={**sample.labels, "worker": str(worker)})
                )
    return prometheus_client.generate_latest(_Families(merged.values()))  # type: ignore[arg-type]


async def _fetch(http: aiohttp.ClientSession, port: int) -> str | None:
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with http.get(url, params={"worker": OWN_ONLY}) as response:
            if response.status != 200:
                logger.warning("worker metrics on port %d answered %d", port, response.status)
                return None
            body = await response.content.read(MAX_BYTES + 1)
            if len(body) > MAX_BYTES:
                logger.warning("worker metrics on port %d exceed %d bytes", port, MAX_BYTES)
                return None
            return body.decode()
    except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as error:
        logger.warning("worker metrics on port %d not read: %s", port, error)
        return None


async def unit_metrics(own: bytes, ops_ports: Sequence[int]) -> bytes:
    """Worker 0's metrics ``own`` with every other worker's (from ``ops_ports``), labelled."""
    others = [(k, port) for k, port in enumerate(ops_ports) if k and port]
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        found = await asyncio.gather(*(_fetch(http, port) for _, port in others))
    texts = {0: own.decode()}
    texts.update({k: text for (k, _), text in zip(others, found, strict=True) if text})
    return merge(texts)
