"""Contract with self-signed-certificates: ``tls-certificates`` (v4 databags), app mode.

canonical/self-signed-certificates-operator (main, df04ad3) provides ``certificates``
(charmcraft.yaml:54-56) with charmlibs-interfaces-tls-certificates ~=1.8 (pyproject.toml:11):
it reads each requirer's ``certificate_signing_requests`` and answers, per CSR, with the
certificate, its CA and the chain ``[certificate, ca]`` (src/charm.py:485-496) in its
application databag under ``certificates``.
"""

from __future__ import annotations

import dataclasses
import json

from charm_scenario import (
    MANAGEMENT_DOMAIN,
    certificates_relation,
    service_status,
    with_relations,
)
from cryptography import x509
from ops import pebble, testing


def test_csr_names_the_management_domain_and_is_no_ca(leader_state):
    """What the provider reads: the requirer's app databag (Mode.APP), one CSR per name."""
    requests = json.loads(
        certificates_relation(leader_state).local_app_data["certificate_signing_requests"]
    )
    assert len(requests) == 1
    assert requests[0]["ca"] is False
    csr = x509.load_pem_x509_csr(requests[0]["certificate_signing_request"].encode())
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [MANAGEMENT_DOMAIN]


def test_issued_chain_is_served_leaf_first(config_dir, running_leader, test_ca):
    """The answer as self-signed-certificates writes it (chain [certificate, ca])."""
    issued = json.loads(certificates_relation(running_leader).remote_app_data["certificates"])
    served = (config_dir / "management.crt").read_text()
    assert served.startswith(issued[0]["certificate"].strip())
    assert issued[0]["ca"].strip() in served


def test_malformed_answer_fails_no_hook_and_keeps_the_workload(ctx, running_leader):
    broken = dataclasses.replace(
        certificates_relation(running_leader), remote_app_data={"certificates": "not json"}
    )
    out = ctx.run(
        ctx.on.relation_changed(broken, remote_unit=0), with_relations(running_leader, broken)
    )
    assert service_status(out) == pebble.ServiceStatus.ACTIVE
    assert not isinstance(out.unit_status, testing.ActiveStatus) or out.unit_status.message
