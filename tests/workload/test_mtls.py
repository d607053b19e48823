"""The client-certificate technique: fails loudly if this runtime stops supporting it."""

from __future__ import annotations

import contextlib
import ssl

import pytest
from cluster_manager import mtls
from cluster_manager.certificates import fingerprint, generate_self_signed
from cryptography.hazmat.primitives.asymmetric import ec


@pytest.fixture
def client_files(tmp_path):
    cert, key = generate_self_signed("never-seen", curve=ec.SECP384R1(), server_auth_only=True)
    (tmp_path / "c.crt").write_text(cert)
    (tmp_path / "c.key").write_text(key)
    return tmp_path / "c.crt", tmp_path / "c.key", fingerprint(ssl.PEM_cert_to_DER_cert(cert))


def client_context(files=None, tls13=True):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if tls13:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if files:
        context.load_cert_chain(files[0], files[1])
    return context


@pytest.mark.parametrize("tls13", [True, False], ids=["TLS1.3", "TLS1.2"])
def test_unknown_self_signed_client_certificate_is_accepted_and_seen(tls_dir, client_files, tls13):
    server = mtls.server_context(
        str(tls_dir / "connector.crt"), str(tls_dir / "connector.key"), request_client_cert=True
    )

    seen = mtls.memory_handshake(server, client_context(client_files, tls13))

    assert seen == client_files[2]


def test_client_without_certificate_completes_the_handshake(tls_dir):
    server = mtls.server_context(
        str(tls_dir / "connector.crt"), str(tls_dir / "connector.key"), request_client_cert=True
    )

    assert mtls.memory_handshake(server, client_context()) is None


def test_plain_ssl_would_refuse_the_same_certificate(tls_dir, client_files):
    """Why the technique exists: CERT_OPTIONAL alone verifies against CAs and fails."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tls_dir / "connector.crt", tls_dir / "connector.key")
    server.verify_mode = ssl.CERT_OPTIONAL

    with pytest.raises(ssl.SSLError):
        mtls.memory_handshake(server, client_context(client_files))


def test_management_server_does_not_ask_for_certificates(tls_dir, client_files):
    server = mtls.server_context(
        str(tls_dir / "management.crt"), str(tls_dir / "management.key"), request_client_cert=False
    )

    assert mtls.memory_handshake(server, client_context(client_files)) is None


@pytest.mark.parametrize("tls13", [True, False], ids=["TLS1.3", "TLS1.2"])
def test_no_session_ticket_is_sent(tls_dir, client_files, tls13):
    """Clients never resume (a new tls.Config per request), so a ticket would be wasted work."""
    server = mtls.server_context(
        str(tls_dir / "connector.crt"), str(tls_dir / "connector.key"), request_client_cert=True
    )
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    client_side = client_context(client_files, tls13).wrap_bio(c_in, c_out)
    for _ in range(10):
        for side, out, peer in ((client_side, c_out, s_in), (server_side, s_out, c_in)):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
            peer.write(out.read())
    server_side.write(b"answer")  # TLS 1.3 sends tickets after the handshake, before data
    c_in.write(s_out.read())

    assert client_side.read(100) == b"answer"
    assert server.num_tickets == 0
    assert not client_side.session.has_ticket
