"""Contract with grafana-k8s: ``grafana_metadata``, this charm the requirer.

canonical/grafana-k8s-operator (main, 382e463) publishes ``grafana_uid``, ``direct_url``
and, with an ingress, ``ingress_url`` in its application databag (src/charm.py:488-497;
lib/charms/grafana_k8s/v0/grafana_metadata.py:105-117 the fields, :219-225 written with
``model_dump(mode="json")`` into the databag, plain strings).
"""

from __future__ import annotations

import tomllib

import pytest
from charm_scenario import service_status, with_relations
from ops import pebble, testing

DIRECT = "http://grafana-k8s-0.grafana-k8s-endpoints.cos.svc.cluster.local:3000"
INGRESS = "https://cos.example.com/cos-grafana-k8s"


def _grafana(**data: str) -> testing.Relation:
    return testing.Relation(
        "grafana-metadata", remote_app_name="grafana-k8s", remote_app_data=data
    )


def _settings(config_dir) -> dict:
    return tomllib.loads((config_dir / "config.toml").read_text())


@pytest.mark.parametrize(
    ("data", "url"),
    [
        ({"grafana_uid": "cos-grafana", "direct_url": DIRECT, "ingress_url": INGRESS}, INGRESS),
        ({"grafana_uid": "cos-grafana", "direct_url": DIRECT}, DIRECT),
    ],
)
def test_grafana_url_reaches_the_workload(config_dir, ctx, running_leader, data, url):
    relation = _grafana(**data)
    ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0), with_relations(running_leader, relation)
    )
    assert _settings(config_dir)["grafana_url"] == url


def test_malformed_metadata_links_nothing_and_fails_no_hook(config_dir, ctx, running_leader):
    relation = _grafana(grafana_uid="x", direct_url="javascript:alert(1)")
    out = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0), with_relations(running_leader, relation)
    )
    assert _settings(config_dir)["grafana_url"] == ""
    assert service_status(out) == pebble.ServiceStatus.ACTIVE
