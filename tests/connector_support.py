"""Helpers for the Cluster Connector tests: raw exchanges on the real client's TLS set-up."""

from __future__ import annotations

import asyncio
import ssl

from cluster_manager.fleet import SimulatedCluster, client


def insecure_context() -> ssl.SSLContext:
    """TLS that verifies nothing and presents no client certificate (what a probe uses)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def raw_cluster_request(
    cluster: SimulatedCluster,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    wait: float = 3.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request on the cluster's pinned mTLS connection; read until the server closes it.

    Returns the status, the headers (lower-case names) and the raw bytes after the headers.
    Raises TimeoutError when the server keeps the connection open longer than ``wait`` seconds.
    """
    token = cluster.token
    assert token is not None
    address, der = await client.fetch_certificate(token.addresses, 5)
    host, port = client.split_address(address)
    reader, writer = await asyncio.open_connection(
        host, port, ssl=cluster.identity.pinned_context(der), server_hostname=host
    )
    lines = [f"{method} {path} HTTP/1.1", "Host: remote", f"User-Agent: {client.USER_AGENT}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    try:
        async with asyncio.timeout(wait):
            response = await reader.read()
    finally:
        writer.close()
    head, _, rest = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    response_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        response_headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), response_headers, rest
