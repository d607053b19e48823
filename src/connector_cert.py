"""The Cluster Connector's certificate: one per application, pinned by every enrolled cluster.

Clusters pin the SHA-256 fingerprint of this certificate (see PROTOCOL.md), so it is made
once by the leader, shared with every unit through a Juju secret, and only made again
when the set of names it must carry changes.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ipaddress
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Clusters never renew the pin, so the certificate outlives any deployment.
VALIDITY = datetime.timedelta(days=365 * 20)
SESSION_KEY_BYTES = 32


@dataclasses.dataclass(frozen=True)
class ConnectorIdentity:
    """The connector's certificate and private key, both PEM."""

    certificate: str
    private_key: str


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def generate(names: list[str]) -> ConnectorIdentity:
    """Create a P-256 key and a long-lived self-signed certificate for these names."""
    if not names:
        raise ValueError("the connector certificate needs at least one name")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return ConnectorIdentity(
        certificate=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def names_of(certificate_pem: str) -> set[str]:
    """The DNS names and IP addresses a certificate's subjectAltName carries."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(sans.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in sans.get_values_for_type(x509.IPAddress)
    }


def needs_new_certificate(identity: ConnectorIdentity | None, names: list[str]) -> bool:
    """Whether the connector certificate must be made (again) to carry exactly these names."""
    if identity is None:
        return True
    return names_of(identity.certificate) != set(names)


def fingerprint(certificate_pem: str) -> str:
    """SHA-256 of the certificate's DER, in lower-case hex: what join tokens pin."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def new_session_key() -> str:
    """A random key for sealing session cookies, hex encoded (64 characters)."""
    return secrets.token_hex(SESSION_KEY_BYTES)


def new_internal_key() -> str:
    """A fresh key units use to authenticate each other: 32 random bytes as 64 hex digits."""
    return secrets.token_hex(32)
