"""Attacks on the Cluster Connector from issue 13, each through real TLS sockets.

Anonymous probe floods, compressed and chunked bodies larger than their limit once inflated, and
deeply nested JSON: each must be refused with a clear 4xx while real clusters keep being served.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import time
import zlib

import pytest
from cluster_manager import tokens
from cluster_manager.connector import body as connector_body
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.fleet.cluster import JOIN_PATH, STATUS_PATH
from connector_support import insecure_context, raw_cluster_request
from support import table_rows

JOIN_LIMIT = 64 * 1024


def error_of(body: bytes) -> str:
    envelope = json.loads(body)
    assert envelope["type"] == "error", envelope
    return envelope["error"]


@pytest.fixture
async def enrol(pool):
    async def enrol(settings, name: str) -> SimulatedCluster:
        token, _ = await tokens.create_token(pool, settings, name)
        cluster = SimulatedCluster(name, metrics_bytes=1024)
        await cluster.join(token.encode())
        return cluster

    return enrol


@pytest.fixture
async def pending(server, pool) -> SimulatedCluster:
    """A cluster holding a valid token it has not used yet."""
    token, _ = await tokens.create_token(pool, server.settings, "edge-pending")
    cluster = SimulatedCluster("edge-pending")
    cluster.use_token(token.encode())
    return cluster


def join_body(cluster: SimulatedCluster, **extra: object) -> bytes:
    return json.dumps(
        {
            "cluster_name": cluster.name,
            "cluster_certificate": cluster.identity.certificate_pem,
            "token": cluster.token_text,
            **extra,
        }
    ).encode()


@pytest.fixture
def inflated(monkeypatch) -> list[int]:
    """Bytes the connector's decompressors produce, call by call (the server runs in-process)."""
    produced: list[int] = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, wbits: int) -> None:
            self._inner = real(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            out = self._inner.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name: str) -> object:
            return getattr(self._inner, name)

    monkeypatch.setattr(connector_body.zlib, "decompressobj", Counting)
    return produced


async def flood_probes(port: int, stop: asyncio.Event, batch: int = 200) -> tuple[int, int]:
    """Pipeline anonymous ``GET /`` on one connection until ``stop``; return (answered, 429s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=insecure_context())
    request = b"GET / HTTP/1.1\r\nHost: remote\r\n\r\n" * batch
    answered = refused = 0
    try:
        while not stop.is_set():
            writer.write(request)
            for _ in range(batch):
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                answered += 1
                refused += head.startswith(b"HTTP/1.1 429")
    finally:
        writer.close()
    return answered, refused


async def test_probe_flood_does_not_starve_real_heartbeats(start_server, enrol):
    """Issue 13, hostile input 2: anonymous probes used to spend the fleet's global budget."""
    servers = await start_server(
        connector_rate_per_second=5,
        connector_burst=15,
        probe_rate_per_second=50,
        probe_burst=50,
    )
    fleet = [await enrol(servers.settings, f"edge-{n}") for n in range(3)]
    stop = asyncio.Event()
    floods = [asyncio.create_task(flood_probes(servers.connector_port, stop)) for _ in range(4)]
    await asyncio.sleep(0.3)  # the flood is well under way
    started = time.monotonic()

    statuses = []
    for _ in range(3):
        beats = await asyncio.gather(*(c.heartbeat(check=False) for c in fleet))
        statuses += [status for status, _ in beats]
    stop.set()
    flooded = await asyncio.gather(*floods)
    elapsed = time.monotonic() - started + 0.3

    assert statuses == [200] * 9, statuses
    answered = sum(a for a, _ in flooded)
    served = answered - sum(r for _, r in flooded)
    assert answered > 400, flooded  # a real flood, answered throughout
    assert served <= 50 + 50 * elapsed + 5, (flooded, elapsed)  # the probes' own cheap limit


async def test_gzip_bomb_join_is_refused_after_inflating_at_most_the_limit(
    pending, pool, inflated
):
    """Issue 13, hostile input 5: a 16 MiB gzip body used to be inflated and parsed."""
    bomb = gzip.compress(b'{"cluster_name": "' + b" " * (16 * 1024 * 1024) + b'"}')
    before = await table_rows(pool)

    status, _, answer = await raw_cluster_request(
        pending, "POST", JOIN_PATH, bomb, {"Content-Encoding": "gzip"}
    )

    assert len(bomb) < 20 * 1024
    assert status == 413, answer
    assert error_of(answer) == f"body larger than {JOIN_LIMIT} bytes"
    assert sum(inflated) <= JOIN_LIMIT + 1, sum(inflated)
    assert await table_rows(pool) == before


async def test_gzip_bomb_heartbeat_is_refused_after_inflating_at_most_the_limit(
    start_server, enrol, pool, inflated
):
    servers = await start_server(max_heartbeat_bytes=256 * 1024)
    cluster = await enrol(servers.settings, "edge-1")
    before = await table_rows(pool)
    bomb = zlib.compress(b"[" + b"0," * (8 * 1024 * 1024) + b"0]", 9)

    status, _, answer = await raw_cluster_request(
        cluster, "POST", STATUS_PATH, bomb, {"Content-Encoding": "deflate"}
    )

    assert status == 413, answer
    assert sum(inflated) <= 256 * 1024 + 1, sum(inflated)
    assert await table_rows(pool) == before


async def test_gzip_that_inflates_to_nothing_is_bounded_by_its_own_size(pending, pool):
    """A gzip header's file name is skipped by zlib: 1 MiB of it inflates to no bytes at all."""
    header = b"\x1f\x8b\x08\x08" + b"\x00" * 6 + b"n" * (1024 * 1024) + b"\x00"
    before = await table_rows(pool)

    status, _, answer = await raw_cluster_request(
        pending,
        "POST",
        JOIN_PATH,
        header + gzip.compress(b"{}")[10:],
        {"Content-Encoding": "gzip"},
    )

    assert status == 413, answer
    assert await table_rows(pool) == before


def chunked(data: bytes, size: int = 4096) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


async def test_chunked_join_larger_than_the_limit_is_refused(pending, pool):
    body = join_body(pending, padding="x" * JOIN_LIMIT)
    before = await table_rows(pool)

    status, _, answer = await raw_cluster_request(
        pending, "POST", JOIN_PATH, chunked(body), {"Transfer-Encoding": "chunked"}
    )

    assert status == 413, answer
    assert await table_rows(pool) == before


async def test_compressed_and_chunked_join_within_the_limit_is_accepted(pending, pool):
    body = gzip.compress(join_body(pending))

    status, headers, answer = await raw_cluster_request(
        pending,
        "POST",
        JOIN_PATH,
        chunked(body, 512),
        {"Transfer-Encoding": "chunked", "Content-Encoding": "gzip"},
    )

    assert (status, answer) == (200, b"")
    assert headers["connection"].lower() == "close"
    assert await pool.fetchval("SELECT name FROM remote_clusters") == "edge-pending"


@pytest.mark.parametrize(
    ("encoding", "body", "status", "message"),
    [
        ("gzip", b"not gzip at all", 400, "Request body cannot be decoded"),
        ("gzip", gzip.compress(b"{}")[:-6], 400, "Request body cannot be decoded"),
        ("gzip", gzip.compress(b"{}") + b"trailing", 400, "Request body cannot be decoded"),
        ("br", b"\x0b\x00\x80{}\x03", 415, "Content-Encoding must be gzip, deflate or none"),
    ],
    ids=["not-gzip", "truncated", "trailing-data", "brotli"],
)
async def test_undecodable_bodies_are_refused_clearly(
    pending, pool, encoding, body, status, message
):
    before = await table_rows(pool)

    answer_status, _, answer = await raw_cluster_request(
        pending, "POST", JOIN_PATH, body, {"Content-Encoding": encoding}
    )

    assert answer_status == status, answer
    assert error_of(answer).startswith(message)
    assert await table_rows(pool) == before


@pytest.mark.parametrize("nested", [b"[" * 60_000, b'{"a":' * 12_000], ids=["arrays", "objects"])
async def test_deeply_nested_json_is_a_400_without_a_traceback(
    start_server, enrol, pool, caplog, nested
):
    """Issue 13, hostile input 6: 60,000 '[' gave a 500 and a logged RecursionError."""
    servers = await start_server()
    cluster = await enrol(servers.settings, "edge-1")
    stranger = SimulatedCluster("edge-2")
    stranger.use_token(cluster.token_text)
    before = await table_rows(pool)

    answers = [
        await cluster.heartbeat(nested, check=False),
        await stranger.request("POST", JOIN_PATH, nested, check=False),
    ]

    nested_token = base64.b64encode(nested[:6000]).decode()
    answers.append(
        await stranger.request(
            "POST", JOIN_PATH, join_body(stranger, token=nested_token), check=False
        )
    )

    # A typed decoder stops at the first value of the wrong type; nesting in a field it skips
    # is refused as too deep.
    wrong_type = "body: expected object, got array" if nested[:1] == b"[" else None
    assert [(s, error_of(b)) for s, b in answers] == [
        (400, wrong_type or "body is nested too deeply"),
        (400, wrong_type or "body is nested too deeply"),
        (400, "token: expected object, got array" if wrong_type else "token is nested too deeply"),
    ]
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]
    assert await table_rows(pool) == before
