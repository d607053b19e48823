"""X.509 helpers: fingerprints, parsing and self-signed certificates."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_CERTIFICATE_PEM = 16 * 1024


class InvalidCertificateError(ValueError):
    """The text is not one PEM certificate."""


def fingerprint(der: bytes) -> str:
    """Return the lower-case hex SHA-256 of a certificate's DER encoding."""
    return hashlib.sha256(der).hexdigest()


def parse_pem(pem: str) -> x509.Certificate:
    """Parse one PEM certificate, bounded in size."""
    if not isinstance(pem, str) or not pem.strip() or len(pem) > MAX_CERTIFICATE_PEM:
        raise InvalidCertificateError("certificate is empty or too long")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise InvalidCertificateError("certificate is not a valid PEM certificate") from None


def der_of(certificate: x509.Certificate) -> bytes:
    """Return the DER encoding of a certificate."""
    return certificate.public_bytes(serialization.Encoding.DER)


def pem_fingerprint(pem: str) -> str:
    """Return the fingerprint of a PEM certificate."""
    return fingerprint(der_of(parse_pem(pem)))


def generate_self_signed(
    common_name: str,
    hosts: list[str] | tuple[str, ...] = (),
    curve: ec.EllipticCurve | None = None,
    days: int = 3650,
    server_auth_only: bool = False,
) -> tuple[str, str]:
    """Create an ECDSA key and a self-signed certificate; return (cert PEM, key PEM).

    ``hosts`` become subjectAltNames: IP addresses as IP SANs, the rest as DNS names.
    """
    key = ec.generate_private_key(curve or ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH]
    if not server_auth_only:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    hash_algorithm = hashes.SHA384() if key.curve.key_size > 256 else hashes.SHA256()
    certificate = builder.sign(key, hash_algorithm)
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert_pem, key_pem


def ensure_self_signed_files(
    cert_file: Path, key_file: Path, common_name: str, hosts: list[str]
) -> str:
    """Create a key pair at the paths unless both exist; return the certificate's fingerprint.

    Existing files are kept, so a certificate pinned by clusters stays the same across restarts.
    """
    if not (cert_file.exists() and key_file.exists()):
        cert_pem, key_pem = generate_self_signed(common_name, hosts)
        cert_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key_pem)
        cert_file.write_text(cert_pem)
    return pem_fingerprint(cert_file.read_text())


def certificate_file_fingerprint(cert_file: str | os.PathLike[str]) -> str:
    """Return the fingerprint of the first certificate in a PEM file."""
    return pem_fingerprint(Path(cert_file).read_text())
