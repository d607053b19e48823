"""COS integrations: remote write, scrape jobs, the fleet dashboard, Grafana's URL, logs."""

import dataclasses
import json
import re
import tomllib
from pathlib import Path

import pytest
from charm_scenario import UNIT_0_HOST, new_logs, unit_host, with_checks
from cosl import LZMABase64
from ops import pebble, testing

import unit_address

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD_SOURCE = ROOT / "workload" / "cluster_manager"
PROM_0 = "http://prometheus-0.prometheus-endpoints.cos.svc.cluster.local:9090/api/v1/write"
PROM_1 = "http://prometheus-1.prometheus-endpoints.cos.svc.cluster.local:9090/api/v1/write"
LOKI_0 = "http://loki-0.loki-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push"
GRAFANA_URL = "https://cos.example.com/cos-grafana"
DASHBOARD_UID = "microcloud-cluster-manager-fleet"


def _settings(config_dir: Path) -> dict:
    return tomllib.loads((config_dir / "config.toml").read_text())


def _with(state: testing.State, *relations: testing.RelationBase) -> testing.State:
    return dataclasses.replace(state, relations=state.relations | set(relations))


def _remote_write(*urls: str) -> testing.Relation:
    return testing.Relation(
        "send-remote-write",
        remote_app_name="prometheus",
        remote_units_data={
            unit: {"remote_write": json.dumps({"url": url})} for unit, url in enumerate(urls)
        },
    )


def _grafana_metadata(**data: str) -> testing.Relation:
    return testing.Relation("grafana-metadata", remote_app_name="grafana", remote_app_data=data)


def _dashboard_relation() -> testing.Relation:
    return testing.Relation("grafana-dashboard", remote_app_name="grafana")


# send-remote-write


def test_every_prometheus_unit_url_reaches_the_workload(config_dir, ctx, running_leader):
    relation = _remote_write(PROM_1, PROM_0)
    since = len(ctx.juju_log)
    ctx.run(ctx.on.relation_changed(relation, remote_unit=0), _with(running_leader, relation))
    assert _settings(config_dir)["remote_write_urls"] == [PROM_0, PROM_1]
    assert "workload configuration changed; restarted" in new_logs(ctx, since)


def test_unusable_remote_write_data_is_ignored(config_dir, ctx, running_leader):
    relation = testing.Relation(
        "send-remote-write",
        remote_app_name="prometheus",
        remote_units_data={
            0: {"remote_write": "not json"},
            1: {"remote_write": json.dumps({"url": "ftp://prometheus/api/v1/write"})},
            2: {"remote_write": json.dumps(["http://prometheus/api/v1/write"])},
            3: {"remote_write": json.dumps({"url": PROM_0})},
            4: {},
        },
    )
    ctx.run(ctx.on.relation_changed(relation, remote_unit=3), _with(running_leader, relation))
    assert _settings(config_dir)["remote_write_urls"] == [PROM_0]


def test_departed_prometheus_unit_is_no_longer_written_to(config_dir, ctx, running_leader):
    both = _remote_write(PROM_0, PROM_1)
    state = ctx.run(ctx.on.relation_changed(both, remote_unit=1), _with(running_leader, both))
    assert _settings(config_dir)["remote_write_urls"] == [PROM_0, PROM_1]
    one_left = dataclasses.replace(
        state.get_relation(both.id), remote_units_data={0: both.remote_units_data[0]}
    )
    state = dataclasses.replace(
        state, relations=(state.relations - {state.get_relation(both.id)}) | {one_left}
    )
    ctx.run(ctx.on.relation_departed(one_left, remote_unit=1, departing_unit=1), state)
    assert _settings(config_dir)["remote_write_urls"] == [PROM_0]


def test_removed_remote_write_stops_forwarding(config_dir, ctx, running_leader):
    relation = _remote_write(PROM_0)
    state = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0), _with(running_leader, relation)
    )
    ctx.run(ctx.on.relation_broken(state.get_relation(relation.id)), state)
    assert _settings(config_dir)["remote_write_urls"] == []


# grafana-metadata and the dashboard uid


def test_grafana_url_and_dashboard_uid_reach_the_workload(config_dir, ctx, running_leader):
    metadata = _grafana_metadata(
        grafana_uid="grafana-uid",
        ingress_url=GRAFANA_URL + "/",
        direct_url="http://grafana-0.grafana-endpoints.cos.svc.cluster.local:3000/",
    )
    state = _with(running_leader, metadata, _dashboard_relation())
    ctx.run(ctx.on.relation_changed(metadata), state)
    settings = _settings(config_dir)
    assert settings["grafana_url"] == GRAFANA_URL
    assert settings["grafana_dashboard_uid"] == DASHBOARD_UID


@pytest.mark.parametrize("key", ["direct_url", "internal_url"])
def test_in_cluster_grafana_url_is_used_without_an_ingress(config_dir, ctx, running_leader, key):
    direct = "http://grafana-0.grafana-endpoints.cos.svc.cluster.local:3000"
    metadata = _grafana_metadata(grafana_uid="grafana-uid", **{key: direct})
    ctx.run(ctx.on.relation_changed(metadata), _with(running_leader, metadata))
    assert _settings(config_dir)["grafana_url"] == direct


def test_json_encoded_grafana_metadata_is_read_too(config_dir, ctx, running_leader):
    metadata = _grafana_metadata(
        grafana_uid=json.dumps("g"), ingress_url=json.dumps(GRAFANA_URL + "/")
    )
    ctx.run(ctx.on.relation_changed(metadata), _with(running_leader, metadata))
    assert _settings(config_dir)["grafana_url"] == GRAFANA_URL


def test_no_dashboard_uid_while_grafana_has_no_dashboard(config_dir, ctx, running_leader):
    metadata = _grafana_metadata(grafana_uid="g", ingress_url=GRAFANA_URL)
    ctx.run(ctx.on.relation_changed(metadata), _with(running_leader, metadata))
    settings = _settings(config_dir)
    assert settings["grafana_url"] == GRAFANA_URL
    assert settings["grafana_dashboard_uid"] == ""


def test_grafana_metadata_without_a_usable_url_links_nothing(config_dir, ctx, running_leader):
    metadata = _grafana_metadata(grafana_uid="g", ingress_url="javascript:alert(1)")
    ctx.run(
        ctx.on.relation_changed(metadata), _with(running_leader, metadata, _dashboard_relation())
    )
    settings = _settings(config_dir)
    assert (settings["grafana_url"], settings["grafana_dashboard_uid"]) == ("", "")


def test_removed_grafana_metadata_drops_the_link(config_dir, ctx, running_leader):
    metadata = _grafana_metadata(grafana_uid="g", ingress_url=GRAFANA_URL)
    state = ctx.run(
        ctx.on.relation_changed(metadata), _with(running_leader, metadata, _dashboard_relation())
    )
    ctx.run(ctx.on.relation_broken(state.get_relation(metadata.id)), state)
    settings = _settings(config_dir)
    assert (settings["grafana_url"], settings["grafana_dashboard_uid"]) == ("", "")


# metrics-endpoint


def test_leader_publishes_the_scrape_job_and_its_topology(ctx, running_leader):
    relation = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    out = ctx.run(ctx.on.relation_joined(relation, remote_unit=0), _with(running_leader, relation))
    app_data = out.get_relation(relation.id).local_app_data
    assert json.loads(app_data["scrape_jobs"]) == [
        {
            "job_name": "cluster-manager",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": ["*:9002"]}],
        }
    ]
    metadata = json.loads(app_data["scrape_metadata"])
    assert metadata["model"] == "dev"
    assert metadata["application"] == "microcloud-cluster-manager-k8s"
    assert metadata["unit"] == "microcloud-cluster-manager-k8s/0"
    assert metadata["charm_name"] == "microcloud-cluster-manager-k8s"
    rules = json.loads(app_data["alert_rules"])["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} >= {"ClusterManagerUnitDown"}
    assert all(rule["labels"]["juju_model"] == "dev" for rule in rules)
    unit_data = out.get_relation(relation.id).local_unit_data
    assert unit_data["prometheus_scrape_unit_address"] == UNIT_0_HOST
    assert unit_data["prometheus_scrape_unit_name"] == "microcloud-cluster-manager-k8s/0"


def test_other_units_publish_only_their_own_address(other_ctx, container, monkeypatch):
    monkeypatch.setattr(unit_address, "fqdn", lambda: unit_host(1))
    relation = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    state = testing.State(
        leader=False,
        model=testing.Model(name="dev"),
        relations={relation, testing.PeerRelation("cluster-manager-peers")},
        containers={container},
    )
    out = other_ctx.run(other_ctx.on.relation_joined(relation, remote_unit=0), state)
    published = out.get_relation(relation.id)
    assert published.local_app_data == {}
    assert published.local_unit_data["prometheus_scrape_unit_name"] == (
        "microcloud-cluster-manager-k8s/1"
    )
    assert published.local_unit_data["prometheus_scrape_unit_address"] == unit_host(1)


# grafana-dashboard


@pytest.fixture
def published_dashboard(ctx, running_leader) -> dict:
    """The template the leader publishes on a new grafana-dashboard relation."""
    relation = _dashboard_relation()
    out = ctx.run(ctx.on.relation_joined(relation, remote_unit=0), _with(running_leader, relation))
    data = json.loads(out.get_relation(relation.id).local_app_data["dashboards"])
    assert list(data["templates"]) == ["file:cluster-manager-fleet"]
    return data["templates"]["file:cluster-manager-fleet"]


@pytest.fixture
def dashboard(published_dashboard) -> dict:
    return json.loads(LZMABase64.decompress(published_dashboard["content"]))


def _panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [panel for panel in panels if panel["type"] != "row"]


def _expressions(dashboard: dict) -> list[str]:
    variables = [v["query"]["query"] for v in dashboard["templating"]["list"]]
    return variables + [t["expr"] for p in _panels(dashboard) for t in p["targets"]]


def _metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\b(?:mcm|lxd)_[A-Za-z0-9_]+", expression))


def _workload_metric_patterns() -> list[re.Pattern[str]]:
    """Metric names in string literals of the workload's source; ``{x}`` parts match any word.

    Counters are exposed with ``_total``, histograms with ``_bucket``, ``_sum`` and ``_count``.
    """
    literal = re.compile(r"""["']((?:mcm|lxd)_(?:[A-Za-z0-9_]|\{[a-z_]+\})+)""")
    names = {
        name
        for path in WORKLOAD_SOURCE.rglob("*.py")
        for name in literal.findall(path.read_text())
    }
    patterns = []
    for name in names:
        body = re.sub(r"\\\{[a-z_]+\\\}", "[A-Za-z0-9_]+", re.escape(name))
        patterns.append(re.compile(f"{body}(?:_total|_bucket|_sum|_count)?"))
    return patterns


def test_dashboard_is_published_without_topology_injection(published_dashboard):
    assert published_dashboard["charm"] == "microcloud-cluster-manager-k8s"
    assert published_dashboard["inject_dropdowns"] is False
    assert published_dashboard["juju_topology"] == {}


def test_dashboard_has_its_fixed_uid_and_a_cluster_variable(dashboard):
    assert dashboard["uid"] == DASHBOARD_UID
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"cluster"}
    assert variables["cluster"]["query"]["query"] == (
        "label_values(mcm_cluster_cpu_count, cluster)"
    )


def test_every_panel_queries_cos_prometheus(dashboard):
    panels = _panels(dashboard)
    assert len(panels) >= 20
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${prometheusds}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_cluster_panels_are_filtered_by_the_cluster_variable(dashboard):
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            names = _metric_names(target["expr"])
            per_cluster = (
                any(name.startswith("lxd_") for name in names) or "$cluster" in (panel["title"])
            )
            if per_cluster:
                assert 'cluster="$cluster"' in target["expr"], panel["title"]


def test_dashboard_covers_the_fleet_a_cluster_its_members_and_the_service(dashboard):
    used = set().union(*(_metric_names(e) for e in _expressions(dashboard)))
    assert {
        "mcm_clusters",
        "mcm_clusters_stale",
        "mcm_heartbeats_accepted_total",
        "mcm_heartbeats_refused_total",
        "mcm_cluster_instances",
        "mcm_cluster_members",
        "mcm_cluster_ceph_members",
        "mcm_cluster_load1",
        "mcm_cluster_memory_used_bytes",
        "mcm_cluster_storage_pool_used_bytes",
        "lxd_cpu_seconds_total",
        "mcm_http_requests_total",
        "mcm_http_request_duration_seconds_bucket",
        "mcm_forward_dropped_heartbeats_total",
        "mcm_db_pool_connections",
    } <= used


def test_every_metric_the_dashboard_uses_is_one_the_workload_emits(dashboard):
    patterns = _workload_metric_patterns()
    assert any(p.fullmatch("mcm_http_requests_total") for p in patterns)
    assert any(p.fullmatch("lxd_memory_MemAvailable_bytes") for p in patterns)
    assert not any(p.fullmatch("mcm_no_such_metric") for p in patterns)
    for expression in _expressions(dashboard):
        names = _metric_names(expression)
        assert names, expression
        unknown = [n for n in names if not any(p.fullmatch(n) for p in patterns)]
        assert not unknown, f"{expression}: the workload emits no {unknown}"


def test_only_the_leader_publishes_dashboards(other_ctx, container):
    relation = _dashboard_relation()
    state = testing.State(leader=False, relations={relation}, containers={container})
    out = other_ctx.run(other_ctx.on.relation_joined(relation, remote_unit=0), state)
    assert out.get_relation(relation.id).local_app_data == {}


# logging


def _log_targets(state: testing.State) -> dict:
    return state.get_container("cluster-manager").plan.to_dict().get("log-targets", {})


def test_logs_are_forwarded_to_every_loki_unit(ctx, running_leader):
    relation = testing.Relation(
        "logging",
        remote_app_name="loki",
        remote_units_data={0: {"endpoint": json.dumps({"url": LOKI_0})}},
    )
    out = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0), _with(running_leader, relation)
    )
    (target,) = _log_targets(out).values()
    assert target["type"] == "loki"
    assert target["location"] == LOKI_0
    assert target["services"] == ["cluster-manager"]
    assert target["labels"]["juju_model"] == "dev"
    assert target["labels"]["juju_unit"] == "microcloud-cluster-manager-k8s/0"


def test_removed_loki_stops_log_forwarding(ctx, running_leader):
    relation = testing.Relation(
        "logging",
        remote_app_name="loki",
        remote_units_data={0: {"endpoint": json.dumps({"url": LOKI_0})}},
    )
    state = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0), _with(running_leader, relation)
    )
    out = ctx.run(ctx.on.relation_broken(state.get_relation(relation.id)), state)
    (target,) = _log_targets(out).values()
    assert target["location"] == LOKI_0
    assert target["services"] == ["-all"]


def test_no_log_targets_without_loki(running_leader):
    assert _log_targets(running_leader) == {}


# status


def test_cos_integrations_leave_the_unit_active(ctx, running_leader):
    relations = (
        _remote_write(PROM_0),
        _grafana_metadata(grafana_uid="g", ingress_url=GRAFANA_URL),
        _dashboard_relation(),
        testing.Relation("metrics-endpoint", remote_app_name="prometheus"),
    )
    state = with_checks(_with(running_leader, *relations), pebble.CheckStatus.UP)
    out = ctx.run(ctx.on.update_status(), state)
    assert out.unit_status == testing.ActiveStatus(
        "UI https://mgmt.example.com, connector connector.example.com:443"
    )
