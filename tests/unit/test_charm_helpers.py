"""The pure helpers beside the charm: TOML rendering, connector certificate."""

import ast
import hashlib
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import workload_config as wc
from config import CharmConfig
from connector_cert import fingerprint, generate, names_of, needs_new_certificate

SETTINGS_PY = Path(__file__).resolve().parents[2] / "workload/cluster_manager/settings.py"


def _workload_setting_names() -> set[str]:
    """Fields of the workload's Settings, read from its source (the charm never imports it)."""
    tree = ast.parse(SETTINGS_PY.read_text())
    settings = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings"
    )
    return {
        node.target.id
        for node in settings.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def _settings(**config: object) -> dict[str, object]:
    database = wc.DatabaseCredentials(("db:5432",), "user", "pw", "cluster_manager")
    observability = wc.Observability(("http://prom:9090/api/v1/write",), "http://g", "uid")
    return wc.settings(
        CharmConfig(**config),  # type: ignore[arg-type]
        database,
        ["c.example.com:443"],
        True,
        observability,
        oidc_client_secret="s3cret",
        internal_host="unit-0.app-endpoints.dev.svc.k8s.example",
    )


def test_every_rendered_key_is_a_workload_setting():
    assert set(_settings()) <= _workload_setting_names()


def test_internal_channel_settings_name_this_units_address_and_the_key_file():
    settings = _settings()
    assert settings["internal_port"] == 9004
    assert settings["internal_address"] == "unit-0.app-endpoints.dev.svc.k8s.example:9004"
    assert settings["internal_key_file"] == "/etc/cluster-manager/internal.key"
    assert settings["oidc_client_secret"] == "s3cret"


def test_dsn_requires_tls_when_the_provider_has_it_on():
    credentials = wc.DatabaseCredentials(("pg:5432",), "u", "p", "db", tls=True)
    assert credentials.dsn == "postgresql://u:p@pg:5432/db?sslmode=require"


def test_without_traefik_tokens_name_every_unit_never_the_connector_domain():
    hosts = ["u-1.app-endpoints.m.svc.k8s.example", "u-0.app-endpoints.m.svc.k8s.example"]
    addresses = wc.connector_addresses("c.example.com", False, 9001, hosts)
    assert addresses == [
        "u-0.app-endpoints.m.svc.k8s.example:9001",
        "u-1.app-endpoints.m.svc.k8s.example:9001",
    ]
    assert wc.connector_addresses("c.example.com", True, 9001, hosts) == ["c.example.com:443"]


@pytest.mark.parametrize(
    "awkward",
    ['quote " and backslash \\', "tab\there", "bell\x07", "del\x7f", "unicode é 😀", ""],
)
def test_rendered_toml_reads_back_the_same_values(awkward):
    values = {"oidc_client_secret": awkward, "connector_addresses": ["a:1", awkward]}
    assert tomllib.loads(wc.render_toml(values)) == values


def test_dsn_percent_encodes_credentials_and_uses_the_primary():
    credentials = wc.DatabaseCredentials(("pg-0:5432", "pg-1:5432"), "u@x", "p/w:d?", "db")
    assert credentials.dsn == "postgresql://u%40x:p%2Fw%3Ad%3F@pg-0:5432/db"


def test_connector_fingerprint_is_sha256_of_the_der():
    identity = generate(["connector.example.com"])
    der = x509.load_pem_x509_certificate(identity.certificate.encode()).public_bytes(
        serialization.Encoding.DER
    )
    assert fingerprint(identity.certificate) == hashlib.sha256(der).hexdigest()


def test_connector_certificate_is_kept_while_its_names_match():
    identity = generate(["connector.example.com", "10.0.0.7"])
    assert names_of(identity.certificate) == {"connector.example.com", "10.0.0.7"}
    assert not needs_new_certificate(identity, ["10.0.0.7", "connector.example.com"])
    assert needs_new_certificate(identity, ["connector.example.com"])
    assert needs_new_certificate(None, ["connector.example.com"])


def test_connector_certificate_lives_for_decades():
    identity = generate(["connector.example.com"])
    certificate = x509.load_pem_x509_certificate(identity.certificate.encode())
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime.days >= 365 * 20
