"""Contract with grafana-k8s: ``grafana_dashboard``, this charm the provider.

canonical/grafana-k8s-operator (main, 382e463) reads the provider's app databag
``dashboards`` as JSON with a ``templates`` object (lib/charms/grafana_k8s/v0/
grafana_dashboard.py:1524-1537); each template's ``content`` is LZMA+base64 (decompressed
with cosl's LZMABase64, :1555), with optional ``juju_topology`` and ``inject_dropdowns``.
"""

from __future__ import annotations

import json

from charm_scenario import with_relations
from cosl import LZMABase64
from ops import testing


def _templates(ctx, running_leader) -> dict:
    grafana = testing.Relation("grafana-dashboard", remote_app_name="grafana-k8s")
    out = ctx.run(
        ctx.on.relation_joined(grafana, remote_unit=0), with_relations(running_leader, grafana)
    )
    return json.loads(out.get_relation(grafana.id).local_app_data["dashboards"])["templates"]


def test_every_template_decompresses_to_a_dashboard(ctx, running_leader):
    templates = _templates(ctx, running_leader)
    assert templates
    for template in templates.values():
        dashboard = json.loads(LZMABase64.decompress(template["content"]))
        assert dashboard["uid"]
        assert dashboard["panels"]
        assert isinstance(template.get("inject_dropdowns", True), bool)


def test_non_leader_publishes_no_dashboard(other_ctx, container):
    grafana = testing.Relation("grafana-dashboard", remote_app_name="grafana-k8s")
    state = testing.State(leader=False, relations={grafana}, containers={container})
    out = other_ctx.run(other_ctx.on.relation_joined(grafana, remote_unit=0), state)
    assert "dashboards" not in out.get_relation(grafana.id).local_app_data
