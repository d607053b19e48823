"""How the MicroCloud client makes each request to a Cluster Connector (PROTOCOL.md).

Every request (join, status, leave) opens new connections over asyncio streams (the cheapest
client in CPU; no keep-alive reuse, no session resumption):

1. :func:`fetch_certificate` probes the token's addresses in order with TLS that verifies
   nothing and presents no certificate, sends a real ``GET /`` and keeps the server certificate
   of the first address that answers;
2. :func:`check_pin` compares its SHA-256 with the token's fingerprint (a mismatch raises
   :class:`CertificateMismatchError`);
3. :func:`send` opens a second connection, TLS 1.3 only, trusting only that certificate, checking
   the host name, presenting the cluster's own certificate, with the Go client's headers; any
   status but 200 raises :class:`RequestRefusedError` carrying the status and body. A 200 that
   would leak a socket in the real daemon (a body, or no ``Connection: close``: the daemon never
   reads or closes a 200's body) raises :class:`LeakingAnswerError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import ssl
import tempfile
import zlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from cluster_manager.certificates import fingerprint, generate_self_signed, pem_fingerprint

USER_AGENT = "Go-http-client/1.1"
HMAC_SCHEME = "ClusterManager-HMAC-1.0"
MAX_RESPONSE_BYTES = 1024 * 1024
DEFAULT_TIMEOUT = 30.0


class ConnectorError(Exception):
    """A request to the Cluster Connector did not succeed."""


class ConnectorUnreachableError(ConnectorError):
    """No address of the token answered the probe."""


class CertificateMismatchError(ConnectorError):
    """The server's certificate is not the one the token pins."""

    def __init__(self, address: str, expected: str, actual: str) -> None:
        super().__init__(
            f"certificate of {address} has fingerprint {actual}, the token pins {expected}"
        )
        self.address, self.expected, self.actual = address, expected, actual


class RequestRefusedError(ConnectorError):
    """The Connector answered with a status other than 200."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"status {status}: {body[:500].decode(errors='replace')}")
        self.status, self.body = status, body


class ProtocolViolationError(ConnectorError):
    """The server's answer is not HTTP/1.1 this client can read."""


class LeakingAnswerError(ProtocolViolationError):
    """A 200 the MicroCloud daemon would leak a socket on (PROTOCOL.md).

    The daemon builds a transport per request and never reads or closes the body of a 200
    (canonical/microcloud f26e73c, client/cluster_manager_client.go:119-143): only an empty 200
    on a connection the server closes leaves nothing open.
    """


class ClusterIdentity:
    """A cluster's own certificate and key (LXD style: ECDSA P-384, self-signed, long-lived).

    Keeps one TLS client context per pinned server certificate, so a heartbeat costs handshakes,
    not key loading.
    """

    def __init__(self, certificate_pem: str, key_pem: str) -> None:
        self.certificate_pem = certificate_pem
        self.key_pem = key_pem
        self.fingerprint = pem_fingerprint(certificate_pem)
        self._contexts: dict[bytes, ssl.SSLContext] = {}

    @classmethod
    def generate(cls, name: str) -> ClusterIdentity:
        """Create a new identity, as LXD does on first start."""
        return cls(*generate_self_signed(name, curve=ec.SECP384R1(), server_auth_only=True))

    def pinned_context(self, server_der: bytes) -> ssl.SSLContext:
        """Return the TLS 1.3 context that trusts only ``server_der`` and presents our cert."""
        context = self._contexts.get(server_der)
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and host name
            context.minimum_version = ssl.TLSVersion.TLSv1_3
            context.load_verify_locations(cadata=server_der)
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            context.options |= ssl.OP_NO_TICKET
            with tempfile.TemporaryDirectory(prefix="mcm-fleet-") as directory:
                cert_file, key_file = Path(directory, "c.crt"), Path(directory, "c.key")
                cert_file.write_text(self.certificate_pem)
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(self.key_pem)
                context.load_cert_chain(cert_file, key_file)
            self._contexts[server_der] = context
        return context


@cache
def probe_context() -> ssl.SSLContext:
    """TLS that verifies nothing and presents no certificate (step 1 only)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.options |= ssl.OP_NO_TICKET
    return context


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` too) into host and port."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConnectorError(f"address {address!r} is not host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


def connect_host(host: str, hosts: Mapping[str, str] | None) -> str:
    """Where to connect for ``host``: its entry in ``hosts`` (like /etc/hosts), else itself.

    Tests give names such as ``connector.mcm.test`` an address this way; the name is still
    what the client sends as SNI and checks in the certificate.
    """
    return hosts.get(host, host) if hosts else host


async def fetch_certificate(
    addresses: tuple[str, ...] | list[str],
    time_limit: float = DEFAULT_TIMEOUT,
    *,
    hosts: Mapping[str, str] | None = None,
) -> tuple[str, bytes]:
    """Probe the addresses in order; return the first that answers and its certificate (DER).

    Each address gets ``time_limit`` seconds to connect and answer. ``hosts`` maps host names
    to the IP addresses to connect to (see :func:`connect_host`).
    """
    failures = []
    for address in addresses:
        try:
            async with asyncio.timeout(time_limit):
                return address, await _probe(address, hosts)
        except (OSError, ssl.SSLError, TimeoutError, ConnectorError, EOFError) as error:
            failures.append(f"{address}: {error or type(error).__name__}")
    raise ConnectorUnreachableError("no connector address answered: " + "; ".join(failures))


async def _probe(address: str, hosts: Mapping[str, str] | None) -> bytes:
    host, port = split_address(address)
    reader, writer = await asyncio.open_connection(
        connect_host(host, hosts), port, ssl=probe_context(), server_hostname=host
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(
            f"GET / HTTP/1.1\r\nHost: {address}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept-Encoding: gzip\r\n\r\n".encode()
        )
        await read_response(reader)  # any status will do: the answer proves the address
    finally:
        await _close(writer)
    if not der:
        raise ConnectorError(f"{address} presented no certificate")
    return der


def check_pin(address: str, der: bytes, expected: str) -> None:
    """Raise :class:`CertificateMismatchError` unless SHA-256(der) is the pinned fingerprint."""
    actual = fingerprint(der)
    if not hmac.compare_digest(actual, expected.strip().lower()):
        raise CertificateMismatchError(address, expected, actual)


def hmac_authorization(secret: str, body: bytes) -> str:
    """Return the ``Authorization`` value of an HMAC-signed join."""
    digest = hmac.new(secret.encode(), body, "sha256").hexdigest()
    return f"{HMAC_SCHEME} {digest}"


async def send(
    address: str,
    context: ssl.SSLContext,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    time_limit: float = DEFAULT_TIMEOUT,
    check: bool = True,
    hosts: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    """Make one request on a new pinned connection; return (status, body).

    The whole exchange must end within ``time_limit`` seconds. ``hosts`` maps host names to
    the IP addresses to connect to (see :func:`connect_host`).
    With ``check`` (the real client's behaviour) a status other than 200 raises
    :class:`RequestRefusedError`.
    """
    host, port = split_address(address)  # for an IP, no SNI is sent but IP SANs are checked
    # Go writes Host, User-Agent, Content-Length, the other headers sorted, then Accept-Encoding.
    lines = [f"{method} {path} HTTP/1.1", "Host: remote", f"User-Agent: {USER_AGENT}"]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    extra = {"Content-Type": "application/json", **(headers or {})}
    lines += [f"{name}: {extra[name]}" for name in sorted(extra)]
    lines.append("Accept-Encoding: gzip")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    async with asyncio.timeout(time_limit):
        reader, writer = await asyncio.open_connection(
            connect_host(host, hosts), port, ssl=context, server_hostname=host
        )
        try:
            writer.write(request)
            headers_seen: dict[str, str] = {}
            status, response = await read_response(reader, headers_seen)
        finally:
            await _close(writer)
    if status == 200 and (response or headers_seen.get("connection", "").lower() != "close"):
        raise LeakingAnswerError(
            f"{method} {path}: a 200 with {len(response)} body bytes and Connection: "
            f"{headers_seen.get('connection', '(none)')} would leak a socket in the daemon"
        )
    if check and status != 200:
        raise RequestRefusedError(status, response)
    return status, response


async def read_response(
    reader: asyncio.StreamReader, headers_seen: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response; return its status and (decoded) body.

    Interim 1xx answers (``100 Continue``, which aiohttp sends to a request carrying
    ``Expect: 100-continue``) are skipped, as RFC 9110 section 15.2 asks of a client; only
    ``101 Switching Protocols`` is final. ``headers_seen``, when given, receives the final
    response's headers (lower-case names).
    """
    status, headers = await _read_head(reader)
    while 100 <= status < 200 and status != 101:
        status, headers = await _read_head(reader)
    if headers_seen is not None:
        headers_seen.update(headers)
    if status in (204, 304) or status < 200:
        return status, b""
    body = await _read_body(reader, headers)
    if headers.get("content-encoding", "").lower() == "gzip":
        body = zlib.decompress(body, wbits=31)
    return status, body


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """One status line and its headers (lower-case names)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ProtocolViolationError("response headers too long") from None
    except asyncio.IncompleteReadError:
        raise ProtocolViolationError("connection closed before a response") from None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ProtocolViolationError(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
    headers = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(rest[:3]), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            size = 0
            while True:
                length = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                size += length
                if size > MAX_RESPONSE_BYTES:
                    raise ProtocolViolationError("response body too large")
                if length == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(await reader.readexactly(length))
                await reader.readexactly(2)
        if "content-length" in headers:
            length = int(headers["content-length"])
            if not 0 <= length <= MAX_RESPONSE_BYTES:
                raise ProtocolViolationError("response body too large")
            return await reader.readexactly(length)
        return await reader.read(MAX_RESPONSE_BYTES)
    except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise ProtocolViolationError("malformed response body") from None


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(5):
            await writer.wait_closed()
