"""Slow or idle connections cannot hold the connector's sockets."""

from __future__ import annotations

import asyncio
import ssl
import time


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
