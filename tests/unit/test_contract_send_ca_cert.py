"""Contract with self-signed-certificates: ``certificate_transfer`` (send-ca-cert).

canonical/self-signed-certificates-operator (main, df04ad3) provides ``send-ca-cert``
(charmcraft.yaml:57-61) with the charm library certificate_transfer_interface v1.15
(charmcraft.yaml:155-157). It sends its one CA certificate (src/charm.py:513-524,
``add_certificates({ca})``); that library writes the v1 form — ``certificates``, a JSON list
of PEM strings, in the provider's application databag — when the requirer's application
databag says ``version`` "1", else the v0 form in the provider's unit databag.
"""

from __future__ import annotations

import json
import tomllib

import pytest
from charm_scenario import with_relations
from ops import testing


@pytest.fixture
def ca_pem(test_ca) -> str:
    ca, _ = test_ca
    return str(ca).strip()


def _send_ca_cert(ca_pem: str) -> testing.Relation:
    """self-signed-certificates's v1 answer: its CA in the app databag."""
    return testing.Relation(
        "send-ca-cert",
        remote_app_name="self-signed-certificates",
        remote_app_data={"certificates": json.dumps([ca_pem]), "version": "1"},
    )


@pytest.mark.parametrize("hook", ["relation_created", "relation_changed"])
def test_requirer_asks_for_the_v1_form(ctx, running_leader, hook):
    fresh = testing.Relation("send-ca-cert", remote_app_name="self-signed-certificates")
    if hook == "relation_created":
        event = ctx.on.relation_created(fresh)
    else:  # a relation made before this charm set the version (new leader, upgrade)
        event = ctx.on.relation_changed(fresh, remote_unit=0)
    out = ctx.run(event, with_relations(running_leader, fresh))
    assert out.get_relation(fresh.id).local_app_data.get("version") == "1"


def test_sent_ca_is_trusted_by_the_workload(config_dir, ctx, running_leader, ca_pem):
    relation = _send_ca_cert(ca_pem)
    ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0), with_relations(running_leader, relation)
    )
    settings = tomllib.loads((config_dir / "config.toml").read_text())
    assert settings["trusted_ca_file"] == "/etc/cluster-manager/trusted-ca.pem"
    assert (config_dir / "trusted-ca.pem").read_text().strip() == ca_pem


def test_malformed_answer_fails_no_hook(config_dir, ctx, running_leader):
    relation = testing.Relation(
        "send-ca-cert",
        remote_app_name="self-signed-certificates",
        remote_app_data={"certificates": "{not json", "version": "1"},
    )
    ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0), with_relations(running_leader, relation)
    )
    settings = tomllib.loads((config_dir / "config.toml").read_text())
    assert "trusted_ca_file" not in settings
