"""Contract with loki-k8s: ``loki_push_api``, this charm the requirer (Pebble forwards logs).

canonical/loki-k8s-operator (main, 8bcecbf): every Loki unit writes ``endpoint`` = JSON
``{"url": ".../loki/api/v1/push"}`` in its unit databag
(lib/charms/loki_k8s/v1/loki_push_api.py:1105 and :1117-1120). Loki's own Pebble log
forwarding labels the streams with the Juju topology and ``job`` =
``juju_<model>_<model-uuid-short>_<application>`` (loki_push_api.py:2299-2307), which the COS
dashboards select on.
"""

from __future__ import annotations

import json

from charm_scenario import with_relations
from ops import testing

LOKI = "http://loki-k8s-0.loki-k8s-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push"


def _loki(**units: str) -> testing.Relation:
    return testing.Relation(
        "logging",
        remote_app_name="loki-k8s",
        remote_units_data={int(k.removeprefix("u")): {"endpoint": v} for k, v in units.items()},
    )


def _targets(state: testing.State) -> dict:
    return state.get_container("cluster-manager").plan.to_dict().get("log-targets", {})


def test_logs_go_to_loki_with_the_labels_cos_selects_on(ctx, running_leader):
    relation = _loki(u0=json.dumps({"url": LOKI}))
    out = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0), with_relations(running_leader, relation)
    )
    (target,) = _targets(out).values()
    assert target["location"] == LOKI
    assert target["services"] == ["cluster-manager"]
    labels = target["labels"]
    uuid_short = running_leader.model.uuid.split("-")[0]
    assert labels["job"] == f"juju_dev_{uuid_short}_microcloud-cluster-manager-k8s"
    assert labels["juju_application"] == "microcloud-cluster-manager-k8s"
    assert labels["juju_unit"] == "microcloud-cluster-manager-k8s/0"
    assert labels["juju_model"] == "dev"


def test_malformed_endpoint_is_skipped_without_a_hook_error(ctx, running_leader):
    relation = _loki(u0="{not json", u1=json.dumps({"url": 42}))
    out = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0), with_relations(running_leader, relation)
    )
    assert _targets(out) == {}
