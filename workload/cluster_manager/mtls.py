"""TLS that asks for a client certificate, accepts any, and leaves the decision to the application.

MicroCloud clusters present a self-signed certificate the server has never seen (PROTOCOL.md), and
probe the server with no certificate at all. Python's ``ssl`` can only "not ask" or "ask and verify
against a CA". Go's ``RequestClientCert`` — ask, accept whatever comes — needs one more step:

We let ``ssl`` set up the context with ``CERT_OPTIONAL`` (the server sends a CertificateRequest and
a missing certificate is fine), then replace OpenSSL's verification callback on that same
``SSL_CTX`` with one that accepts every chain, through ``SSL_CTX_set_verify`` in the libssl that
Python's ``_ssl`` module is linked against. Identity is then the SHA-256 fingerprint of the peer
certificate, decided by the application. The pointer to the ``SSL_CTX`` is read from the
``_ssl._SSLContext`` object; before it is used we check that OpenSSL reports, for that pointer, the
same verify mode and options Python does, and after installing the callback a handshake in memory
with an unknown self-signed client certificate must succeed. If a future runtime changes any of
this, :func:`server_context` raises :class:`UnsupportedRuntimeError` instead of serving.
"""

from __future__ import annotations

import _ssl
import contextlib
import ctypes
import ssl
from functools import cache

from aiohttp import web

from cluster_manager.certificates import fingerprint

SSL_VERIFY_PEER = 0x01

_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


class UnsupportedRuntimeError(RuntimeError):
    """This Python/OpenSSL cannot accept arbitrary client certificates."""


@_VERIFY_CALLBACK
def _accept_any_chain(preverify_ok: int, store_ctx: int) -> int:
    return 1


@cache
def _libssl() -> ctypes.CDLL:
    # dlsym on the _ssl extension's handle finds the symbols of the libssl it was linked against.
    path = getattr(_ssl, "__file__", None)
    lib = ctypes.CDLL(path) if path else ctypes.CDLL(None)
    try:
        lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
        lib.SSL_CTX_set_verify.restype = None
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    except AttributeError as error:
        raise UnsupportedRuntimeError(f"libssl symbols not found: {error}") from None
    return lib


def _ssl_ctx_pointer(context: ssl.SSLContext) -> int:
    # CPython's PySSLContext starts with PyObject_HEAD followed by the SSL_CTX pointer.
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer:
        raise UnsupportedRuntimeError("could not find the SSL_CTX of an ssl.SSLContext")
    return pointer


def accept_any_client_certificate(context: ssl.SSLContext) -> None:
    """Make ``context`` request a client certificate and accept any (or none)."""
    lib = _libssl()
    context.verify_mode = ssl.CERT_OPTIONAL
    pointer = _ssl_ctx_pointer(context)
    if (
        lib.SSL_CTX_get_verify_mode(pointer) != SSL_VERIFY_PEER
        or lib.SSL_CTX_get_options(pointer) != context.options
    ):
        raise UnsupportedRuntimeError("ssl.SSLContext layout is not the one this module knows")
    lib.SSL_CTX_set_verify(pointer, SSL_VERIFY_PEER, _accept_any_chain)


def server_context(cert_file: str, key_file: str, *, request_client_cert: bool) -> ssl.SSLContext:
    """Build the TLS server context of a server (TLS 1.2+, client certificate optional)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    # Clusters open new connections for every request and never resume a session (the
    # MicroCloud client builds a new tls.Config per request, without a ClientSessionCache:
    # canonical/microcloud client/cluster_manager_client.go lines 146-208). Tickets would only
    # cost CPU: OP_NO_TICKET stops TLS 1.2's; TLS 1.3 would still send two stateful tickets
    # after every handshake (one more write each time) unless num_tickets is 0.
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    if request_client_cert:
        accept_any_client_certificate(context)
        self_check(cert_file, key_file)
    return context


@cache
def self_check(cert_file: str, key_file: str) -> None:
    """Handshake in memory with an unknown self-signed client certificate; raise if refused."""
    import tempfile
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric import ec

    from cluster_manager.certificates import generate_self_signed

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    accept_any_client_certificate(server)
    cert_pem, key_pem = generate_self_signed("self-check", curve=ec.SECP384R1())
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "c.crt").write_text(cert_pem)
        Path(tmp, "c.key").write_text(key_pem)
        client.load_cert_chain(Path(tmp, "c.crt"), Path(tmp, "c.key"))
    seen = memory_handshake(server, client)
    expected = fingerprint(ssl.PEM_cert_to_DER_cert(cert_pem))
    if seen != expected:
        raise UnsupportedRuntimeError("TLS self-check: the client certificate was not accepted")


def memory_handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str | None:
    """Run a TLS handshake between two contexts in memory; return the client cert's fingerprint.

    Raises ``ssl.SSLError`` when either side refuses the handshake.
    """
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    client_side = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side, out, peer_in in (
            ("client", client_side, c_out, s_in),
            ("server", server_side, s_out, c_in),
        ):
            try:
                side.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
            data = out.read()
            if data:
                peer_in.write(data)
        if all(done.values()):
            break
    else:
        raise ssl.SSLError("handshake did not complete")
    # TLS 1.3: the server learns the client certificate from the client's last flight.
    with contextlib.suppress(ssl.SSLWantReadError):
        server_side.read(1)
    der = server_side.getpeercert(binary_form=True)
    return fingerprint(der) if der else None


def peer_certificate(request: web.Request) -> bytes | None:
    """Return the DER certificate the TLS peer presented, if any."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True)
