"""Constants and state helpers shared by the charm's Scenario tests.

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

from ops import pebble, testing

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT / "src", ROOT / "lib"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from charmlibs.interfaces.tls_certificates import (  # noqa: E402
    Certificate,
    CertificateSigningRequest,
    PrivateKey,
)

MANAGEMENT_DOMAIN = "mgmt.example.com"
CONNECTOR_DOMAIN = "connector.example.com"
DB_USER = "relation_7"
DB_PASSWORD = "p@ss:w/rd"
DB_ENDPOINTS = "postgresql-k8s-primary.dev.svc.cluster.local:5432"
MODEL = testing.Model(name="dev")
APP = "microcloud-cluster-manager-k8s"
# Kubernetes's cluster domain is configurable: the tests use one that is not cluster.local.
CLUSTER_DOMAIN = "mcm.internal"


def unit_host(unit: int) -> str:
    """The name a unit's pod has in the tests' Kubernetes."""
    return f"{APP}-{unit}.{APP}-endpoints.dev.svc.{CLUSTER_DOMAIN}"


UNIT_0_HOST = unit_host(0)
CONFIG = {
    "management-api-domain": MANAGEMENT_DOMAIN,
    "cluster-connector-domain": CONNECTOR_DOMAIN,
    "oidc-issuer": "https://idp.example.com/",
    "oidc-client-id": "cluster-manager",
    "oidc-client-secret": "client-secret-value",
    "oidc-audience": "https://mgmt.example.com",
}


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


def certificates_relation(state: testing.State) -> testing.Relation:
    """The state's certificates relation."""
    return next(r for r in state.relations if r.endpoint == "certificates")


def relation(state: testing.State, endpoint: str) -> testing.Relation:
    """The state's relation on an endpoint."""
    return next(r for r in state.relations if r.endpoint == endpoint)


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


def with_relations(state: testing.State, *relations: testing.RelationBase) -> testing.State:
    """The state with these relations added, replacing any on the same endpoint."""
    endpoints = {rel.endpoint for rel in relations}
    kept = {rel for rel in state.relations if rel.endpoint not in endpoints}
    return dataclasses.replace(state, relations=kept | set(relations))


def service_status(state: testing.State) -> pebble.ServiceStatus | None:
    """The workload service's status in the state's container."""
    return state.get_container("cluster-manager").service_statuses.get("cluster-manager")
