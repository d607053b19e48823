"""Contract with prometheus-k8s: ``prometheus_scrape``, this charm the provider.

canonical/prometheus-k8s-operator (main, 432c227) consumes it with MetricsEndpointConsumer
(src/charm.py:222): it reads the provider's app databag ``scrape_jobs`` (JSON list,
lib/charms/prometheus_k8s/v0/prometheus_scrape.py:1274), ``scrape_metadata`` (JSON object with
the Juju topology, :1279) and ``alert_rules`` (JSON, :1115), and each provider unit's
``prometheus_scrape_unit_address``, ``prometheus_scrape_unit_name`` and optional
``prometheus_scrape_unit_path`` (:1322-1327), which a ``*:PORT`` target expands to.
"""

from __future__ import annotations

import json

from charm_scenario import UNIT_0_HOST, with_relations
from ops import testing

TOPOLOGY_KEYS = {"model", "model_uuid", "application", "unit", "charm_name"}


def _published(ctx, running_leader) -> testing.Relation:
    prometheus = testing.Relation("metrics-endpoint", remote_app_name="prometheus-k8s")
    out = ctx.run(
        ctx.on.relation_joined(prometheus, remote_unit=0),
        with_relations(running_leader, prometheus),
    )
    return out.get_relation(prometheus.id)


def _expand(jobs: list[dict], unit_data: dict[str, str]) -> list[str]:
    """Targets as Prometheus's consumer expands ``*`` with the unit's published address."""
    return [
        target.replace("*", unit_data["prometheus_scrape_unit_address"])
        for job in jobs
        for config in job["static_configs"]
        for target in config["targets"]
    ]


def test_scrape_jobs_expand_to_this_units_ops_port(ctx, running_leader):
    published = _published(ctx, running_leader)
    jobs = json.loads(published.local_app_data["scrape_jobs"])
    assert isinstance(jobs, list)
    assert all(job["metrics_path"] == "/metrics" for job in jobs)
    assert _expand(jobs, published.local_unit_data) == [f"{UNIT_0_HOST}:9002"]
    assert published.local_unit_data["prometheus_scrape_unit_name"] == (
        "microcloud-cluster-manager-k8s/0"
    )


def test_scrape_metadata_is_the_juju_topology(ctx, running_leader):
    metadata = json.loads(_published(ctx, running_leader).local_app_data["scrape_metadata"])
    assert set(metadata) >= TOPOLOGY_KEYS
    assert metadata["application"] == "microcloud-cluster-manager-k8s"


def test_alert_rules_are_prometheus_rule_groups(ctx, running_leader):
    rules = json.loads(_published(ctx, running_leader).local_app_data["alert_rules"])
    assert rules["groups"]
    for group in rules["groups"]:
        assert group["name"]
        assert all({"alert", "expr"} <= set(rule) for rule in group["rules"])
