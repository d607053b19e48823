"""Slow or idle connections cannot hold the connector's sockets."""

from __future__ import annotations

import asyncio
import ssl
import time

import aiohttp
from cluster_manager import server


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_connection_that_never_finishes_its_headers_is_closed(start_server):
    servers = await start_server(connection_max_age=1.0)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", servers.connector_port, ssl=insecure()
    )
    writer.write(b"POST /1.0/remote-cluster/status HTTP/1.1\r\nHost: remote\r\n")
    started = time.monotonic()

    data = await asyncio.wait_for(reader.read(), timeout=10)

    assert data == b""  # closed without an answer
    assert time.monotonic() - started < 5
    writer.close()


async def test_connection_that_never_handshakes_is_closed(start_server):
    servers = await start_server(tls_handshake_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", servers.connector_port)
    writer.write(b"\x16\x03\x01")  # the start of a ClientHello, then nothing

    data = await asyncio.wait_for(reader.read(), timeout=10)

    assert data == b""
    writer.close()


async def test_server_keeps_serving_while_slow_clients_hang(start_server):
    servers = await start_server(connection_max_age=2.0)
    hanging = []
    for _ in range(50):
        _, writer = await asyncio.open_connection(
            "127.0.0.1", servers.connector_port, ssl=insecure()
        )
        writer.write(b"GET / HTTP/1.1\r\n")
        hanging.append(writer)

    reader, writer = await asyncio.open_connection(
        "127.0.0.1", servers.connector_port, ssl=insecure()
    )
    writer.write(b"GET / HTTP/1.1\r\nHost: remote\r\nConnection: close\r\n\r\n")
    response = await asyncio.wait_for(reader.read(), timeout=5)

    assert response.startswith(b"HTTP/1.1 200")
    for w in hanging:
        w.close()


async def lifetime(port: int, *, tls: bool, send: bytes, limit: float) -> float:
    """Open a connection that sends ``send`` then nothing; seconds until the server closed it."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=insecure() if tls else None
    )
    opened = time.monotonic()
    writer.write(send)
    try:
        data = await asyncio.wait_for(reader.read(), timeout=limit)
    except (ConnectionError, ssl.SSLError):
        data = b""
    finally:
        writer.close()
    assert data == b""  # closed without an answer
    return time.monotonic() - opened


async def test_idle_and_half_sent_connections_on_management_and_ops_are_closed(start_server):
    servers = await start_server(tls_handshake_timeout=2.0)
    management, ops = servers.management_port, servers.ops_port
    half_sent = b"GET /health/live HTTP/1.1\r\nHost: x\r\n"  # headers never finished
    keepalive = server.MANAGEMENT_KEEPALIVE
    clients = {  # what a client does: (port, TLS, bytes sent), and within how long it is dropped
        "management, no TLS handshake": ((management, False, b""), 2.0),
        "management, nothing sent": ((management, True, b""), keepalive),
        "management, half-sent headers": ((management, True, half_sent), keepalive),
        "ops, nothing sent": ((ops, False, b""), server.OPS_KEEPALIVE),
        "ops, half-sent headers": ((ops, False, half_sent), server.OPS_KEEPALIVE),
    }
    kinds = list(clients)

    lifetimes = await asyncio.gather(
        *(
            asyncio.gather(
                *(lifetime(port, tls=tls, send=sent, limit=limit + 10) for _ in range(20))
            )
            for (port, tls, sent), limit in clients.values()
        )
    )

    for kind, seconds in zip(kinds, lifetimes, strict=True):
        limit = clients[kind][1]
        assert max(seconds) < limit + 2, (kind, max(seconds))
    async with (  # and the servers still answer
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{ops}/health/live") as response,
    ):
        assert response.status == 200


async def keep_asking(port: int, *, tls: bool, limit: float) -> tuple[int, float]:
    """Send a request every 0.3 s on one connection until it is closed; (answers, seconds)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=insecure() if tls else None
    )
    opened, answers = time.monotonic(), 0
    try:
        while time.monotonic() - opened < limit:
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            answers += 1
            await asyncio.sleep(0.3)
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
    return answers, time.monotonic() - opened


async def test_busy_keep_alive_connection_is_cut_at_its_max_age(start_server, monkeypatch):
    monkeypatch.setattr(server, "MANAGEMENT_MAX_AGE", 1.5)
    monkeypatch.setattr(server, "OPS_MAX_AGE", 1.5)
    servers = await start_server()

    (management_answers, management_age), (ops_answers, ops_age) = await asyncio.gather(
        keep_asking(servers.management_port, tls=True, limit=20),
        keep_asking(servers.ops_port, tls=False, limit=20),
    )

    assert management_answers >= 3
    assert ops_answers >= 3
    assert management_age < 3
    assert ops_age < 3
