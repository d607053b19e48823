"""Shared fixtures: the charm's Scenario context and the state of a fully integrated unit.

The certificates fixture plays the real tls-certificates exchange: the charm's library
writes a CSR, a test CA signs it, and the signed certificate goes back in the provider's
databag, so the charm sees what a certificates charm would send.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
from pathlib import Path

import pytest
from ops import pebble, testing

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT / "src", ROOT / "lib"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from charmlibs.interfaces.tls_certificates import (  # noqa: E402
    Certificate,
    CertificateRequestAttributes,
    CertificateSigningRequest,
    PrivateKey,
)

from charm import ClusterManagerCharm  # noqa: E402

MANAGEMENT_DOMAIN = "mgmt.example.com"
CONNECTOR_DOMAIN = "connector.example.com"
DB_USER = "relation_7"
DB_PASSWORD = "p@ss:w/rd"
DB_ENDPOINTS = "postgresql-k8s-primary.dev.svc.cluster.local:5432"
MODEL = testing.Model(name="dev")
CONFIG = {
    "management-api-domain": MANAGEMENT_DOMAIN,
    "cluster-connector-domain": CONNECTOR_DOMAIN,
    "oidc-issuer": "https://idp.example.com/",
    "oidc-client-id": "cluster-manager",
    "oidc-client-secret": "client-secret-value",
    "oidc-audience": "https://mgmt.example.com",
}


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


def sign_requested_certificates(
    relation: testing.Relation, ca: Certificate, ca_key: PrivateKey
) -> testing.Relation:
    """Answer every CSR the charm wrote in its app databag, as a certificates charm does."""
    requests = json.loads(relation.local_app_data.get("certificate_signing_requests", "[]"))
    issued = []
    for request in requests:
        csr = CertificateSigningRequest.from_string(request["certificate_signing_request"])
        certificate = csr.sign(ca, ca_key, datetime.timedelta(days=10))
        issued.append(
            {
                "certificate_signing_request": str(csr),
                "certificate": str(certificate),
                "ca": str(ca),
                "chain": [str(certificate), str(ca)],
            }
        )
    return dataclasses.replace(relation, remote_app_data={"certificates": json.dumps(issued)})


@pytest.fixture
def peer() -> testing.PeerRelation:
    return testing.PeerRelation("cluster-manager-peers")


@pytest.fixture
def db_secret() -> testing.Secret:
    """The user credentials postgresql-k8s shares with the charm."""
    return testing.Secret({"username": DB_USER, "password": DB_PASSWORD}, owner=None, label=None)


@pytest.fixture
def database(db_secret: testing.Secret) -> testing.Relation:
    """A database relation whose provider answered the charm's request (v1 contract)."""
    response = {
        "resource": "cluster_manager",
        "salt": "0123456789abcdef",
        "request-id": "c0ffee",
        "endpoints": DB_ENDPOINTS,
        "secret-user": db_secret.id,
    }
    return testing.Relation(
        "database",
        remote_app_name="postgresql-k8s",
        remote_app_data={"version": "v1", "requests": json.dumps([response])},
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


def with_checks(state: testing.State, ready: pebble.CheckStatus) -> testing.State:
    """The state with Pebble reporting the planned checks: alive, and ready or not."""
    container = state.get_container("cluster-manager")
    checks = {
        testing.CheckInfo(
            "cluster-manager-alive", level=pebble.CheckLevel.ALIVE, status=pebble.CheckStatus.UP
        ),
        testing.CheckInfo("cluster-manager-ready", level=pebble.CheckLevel.READY, status=ready),
    }
    container = dataclasses.replace(container, check_infos=checks)
    return dataclasses.replace(
        state,
        containers=(state.containers - {state.get_container("cluster-manager")}) | {container},
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


def certificates_relation(state: testing.State) -> testing.Relation:
    """The state's certificates relation."""
    return next(r for r in state.relations if r.endpoint == "certificates")


def relation(state: testing.State, endpoint: str) -> testing.Relation:
    """The state's relation on an endpoint."""
    return next(r for r in state.relations if r.endpoint == endpoint)


@pytest.fixture
def running_leader(ctx: testing.Context, leader_state: testing.State) -> testing.State:
    """The leader after the certificate arrived: workload configured and running."""
    return ctx.run(ctx.on.relation_changed(certificates_relation(leader_state)), leader_state)


def new_logs(ctx: testing.Context, since: int) -> list[str]:
    """Messages the charm logged after the first ``since`` lines."""
    return [line.message for line in ctx.juju_log[since:]]


def non_leader_view(leader: testing.State, container: testing.Container) -> testing.State:
    """What another unit of the same application sees once the leader has reconciled.

    Application secrets and the peer relation's application data are shared by every
    unit; the certificates relation's app data is the leader's own to read.
    """
    relations = set()
    for rel in leader.relations:
        if rel.endpoint == "certificates":
            rel = dataclasses.replace(rel, local_app_data={})
        if isinstance(rel, testing.PeerRelation):
            rel = dataclasses.replace(rel, peers_data={0: {}})
        relations.add(rel)
    return dataclasses.replace(
        leader,
        leader=False,
        relations=relations,
        containers={container},
        unit_status=testing.UnknownStatus(),
    )
