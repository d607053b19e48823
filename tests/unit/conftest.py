"""Fixtures of the charm's Scenario tests: the context and a fully integrated unit.

The certificates fixtures play the real tls-certificates exchange: the charm's library
writes a CSR, a test CA signs it, and the signed certificate goes back in the provider's
databag, so the charm sees what a certificates charm would send.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import pytest
from charm_scenario import (
    CONFIG,
    DB_ENDPOINTS,
    DB_PASSWORD,
    DB_USER,
    MODEL,
    UNIT_0_HOST,
    certificates_relation,
    sign_requested_certificates,
)
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
)
from ops import testing

import unit_address
from charm import ClusterManagerCharm

REQUESTED = json.dumps(["username", "password", "tls", "tls-ca", "uris"])


@pytest.fixture
def ctx() -> testing.Context:
    """The charm, with metadata, config and actions read from charmcraft.yaml."""
    return testing.Context(ClusterManagerCharm)


@pytest.fixture
def other_ctx() -> testing.Context:
    """The same charm as unit 1, beside the leader (unit 0)."""
    return testing.Context(ClusterManagerCharm, unit_id=1)


@pytest.fixture(scope="session")
def test_ca() -> tuple[Certificate, PrivateKey]:
    """A CA standing in for the certificates charm."""
    key = PrivateKey.generate()
    ca = Certificate.generate_self_signed_ca(
        CertificateRequestAttributes(common_name="test CA"), key, datetime.timedelta(days=30)
    )
    return ca, key


@pytest.fixture
def peer() -> testing.PeerRelation:
    return testing.PeerRelation("cluster-manager-peers")


@pytest.fixture(autouse=True)
def pod_fqdn(monkeypatch: pytest.MonkeyPatch) -> str:
    """The pod's host name, as Kubernetes sets it (simulated; a non-default cluster domain)."""
    monkeypatch.setattr(unit_address, "fqdn", lambda: UNIT_0_HOST)
    return UNIT_0_HOST


@pytest.fixture
def db_secret() -> testing.Secret:
    """The user credentials postgresql-k8s shares with the charm (``secret-user``).

    Content keys as data_interfaces v0 groups them: canonical/postgresql-k8s-operator
    lib/charms/data_platform_libs/v0/data_interfaces.py:1129-1131 (SECRET_LABEL_MAP user group).
    """
    return testing.Secret(
        {"username": DB_USER, "password": DB_PASSWORD, "uris": "postgresql://..."},
        owner=None,
        label=None,
    )


@pytest.fixture
def database(db_secret: testing.Secret) -> testing.Relation:
    """A database relation postgresql-k8s answered in the v0 form, credentials in a secret.

    The answer postgresql-k8s writes: canonical/postgresql-k8s-operator (main = 14)
    src/relations/postgresql_provider.py:130-164 (credentials, endpoints, uris, tls, version,
    database); our request is in the requirer's app databag.
    """
    return testing.Relation(
        "database",
        remote_app_name="postgresql-k8s",
        local_app_data={"database": "cluster_manager", "requested-secrets": REQUESTED},
        remote_app_data={
            "endpoints": DB_ENDPOINTS,
            "database": "cluster_manager",
            "version": "14.15",
            "tls": "False",
            "secret-user": db_secret.id,
        },
    )


@pytest.fixture
def traefik() -> testing.Relation:
    return testing.Relation(
        "traefik-route",
        remote_app_name="traefik-k8s",
        remote_app_data={"external_host": "10.0.0.50", "scheme": "https"},
    )


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """Where the container's /etc/cluster-manager lives, so files outlast one hook."""
    path = tmp_path / "etc-cluster-manager"
    path.mkdir()
    return path


@pytest.fixture
def container(config_dir: Path) -> testing.Container:
    """The workload container, reachable, nothing planned yet."""
    return testing.Container(
        "cluster-manager",
        can_connect=True,
        mounts={"config": testing.Mount(location="/etc/cluster-manager", source=config_dir)},
    )


@pytest.fixture
def leader_state(
    ctx: testing.Context,
    test_ca: tuple[Certificate, PrivateKey],
    peer: testing.PeerRelation,
    database: testing.Relation,
    db_secret: testing.Secret,
    traefik: testing.Relation,
    container: testing.Container,
) -> testing.State:
    """A leader with every integration in place and its certificate issued.

    Built by running the charm: the first hook makes the CSR and the shared secrets, the
    test CA signs the CSR, and the result is the state before the certificate arrives.
    """
    certificates = testing.Relation("certificates", remote_app_name="self-signed-certificates")
    state = testing.State(
        leader=True,
        model=MODEL,
        config=CONFIG,
        relations={peer, database, certificates, traefik},
        secrets={db_secret},
        containers={container},
    )
    state = ctx.run(ctx.on.relation_created(certificates), state)
    signed = sign_requested_certificates(state.get_relation(certificates.id), *test_ca)
    return dataclasses.replace(
        state, relations=(state.relations - {state.get_relation(certificates.id)}) | {signed}
    )


@pytest.fixture
def running_leader(ctx: testing.Context, leader_state: testing.State) -> testing.State:
    """The leader after the certificate arrived: workload configured and running."""
    return ctx.run(ctx.on.relation_changed(certificates_relation(leader_state)), leader_state)
