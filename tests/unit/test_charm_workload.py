"""The workload container: configuration file, TLS files, Pebble layer, restarts."""

import dataclasses
import json
import re
import tomllib

import ops
import pytest
from charm_scenario import (
    CONNECTOR_DOMAIN,
    DB_ENDPOINTS,
    MANAGEMENT_DOMAIN,
    UNIT_0_HOST,
    new_logs,
    non_leader_view,
    relation,
    sign_requested_certificates,
    unit_host,
)
from cryptography import x509
from ops import testing

import unit_address

CONFIG_FILE = "/etc/cluster-manager/config.toml"


def test_config_file_carries_every_setting_the_workload_needs(config_dir, ctx, running_leader):
    settings = tomllib.loads((config_dir / "config.toml").read_text())
    assert settings == {
        "database_dsn": (
            f"postgresql://relation_7:p%40ss%3Aw%2Frd@{DB_ENDPOINTS}/cluster_manager"
        ),
        "log_level": "INFO",
        "management_cert_file": "/etc/cluster-manager/management.crt",
        "management_key_file": "/etc/cluster-manager/management.key",
        "management_url": f"https://{MANAGEMENT_DOMAIN}",
        "connector_cert_file": "/etc/cluster-manager/connector.crt",
        "connector_key_file": "/etc/cluster-manager/connector.key",
        "connector_addresses": [f"{CONNECTOR_DOMAIN}:443"],
        "oidc_issuer": "https://idp.example.com/",
        "oidc_client_id": "cluster-manager",
        "oidc_client_secret": "client-secret-value",
        "oidc_audience": "https://mgmt.example.com",
        "oidc_groups_claim": "mcm-idp-groups",
        "oidc_admin_group": "admins",
        "oidc_operator_group": "",
        "oidc_viewer_group": "",
        "session_key_file": "/etc/cluster-manager/session.key",
        "stale_after_intervals": 3.0,
        "remote_write_urls": [],
        "grafana_url": "",
        "grafana_dashboard_uid": "",
        "internal_port": 9004,
        "internal_address": f"{UNIT_0_HOST}:9004",
        "internal_key_file": "/etc/cluster-manager/internal.key",
        "workers": 0,  # option workers=auto: one per CPU the workload may use
    }


def test_secret_bearing_files_are_private(config_dir, running_leader):
    for name in ("config.toml", "management.key", "connector.key", "session.key"):
        mode = (config_dir / name).stat().st_mode & 0o777
        assert mode == 0o600, f"{name} has mode {oct(mode)}"


def test_management_api_serves_the_issued_certificate_chain(
    config_dir, ctx, running_leader, test_ca
):
    ca, _ = test_ca
    chain = (config_dir / "management.crt").read_text()
    certificates = x509.load_pem_x509_certificates(chain.encode())
    sans = certificates[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == [MANAGEMENT_DOMAIN]
    assert certificates[-1].subject == x509.load_pem_x509_certificate(str(ca).encode()).subject
    key = (config_dir / "management.key").read_text()
    assert "PRIVATE KEY" in key


def test_layer_runs_serve_with_health_checks_and_restart_on_failure(running_leader):
    plan = running_leader.get_container("cluster-manager").plan.to_dict()
    service = plan["services"]["cluster-manager"]
    assert service["command"] == f"cluster-manager --config {CONFIG_FILE} serve"
    assert service["startup"] == "enabled"
    assert service["on-failure"] == "restart"
    assert service["on-check-failure"] == {"cluster-manager-alive": "restart"}
    assert service["user"] == "_daemon_"
    checks = plan["checks"]
    assert checks["cluster-manager-alive"]["level"] == "alive"
    assert checks["cluster-manager-alive"]["http"] == {"url": "http://localhost:9002/health/live"}
    assert checks["cluster-manager-ready"]["level"] == "ready"
    assert checks["cluster-manager-ready"]["http"] == {"url": "http://localhost:9002/health/ready"}
    assert running_leader.get_container("cluster-manager").service_statuses == {
        "cluster-manager": ops.pebble.ServiceStatus.ACTIVE
    }


def test_unchanged_inputs_neither_replan_nor_restart(ctx, running_leader):
    since = len(ctx.juju_log)
    ctx.run(ctx.on.config_changed(), running_leader)
    logs = new_logs(ctx, since)
    assert "workload layer changed; replanned" not in logs
    assert "workload configuration changed; restarted" not in logs


def test_changed_option_rewrites_config_and_restarts_without_replanning(
    config_dir, ctx, running_leader
):
    state = dataclasses.replace(
        running_leader, config={**running_leader.config, "log-level": "debug"}
    )
    since = len(ctx.juju_log)
    ctx.run(ctx.on.config_changed(), state)
    assert tomllib.loads((config_dir / "config.toml").read_text())["log_level"] == "DEBUG"
    logs = new_logs(ctx, since)
    assert "workload configuration changed; restarted" in logs
    assert "workload layer changed; replanned" not in logs


@pytest.mark.parametrize(("option", "setting"), [("4", 4), ("auto", 0)])
def test_workers_option_sets_the_workloads_process_count(
    config_dir, ctx, running_leader, option, setting
):
    state = dataclasses.replace(
        running_leader, config={**running_leader.config, "workers": option}
    )
    ctx.run(ctx.on.config_changed(), state)
    assert tomllib.loads((config_dir / "config.toml").read_text())["workers"] == setting


def test_received_ca_certificates_are_trusted_by_the_workload(
    config_dir, ctx, running_leader, test_ca
):
    ca, _ = test_ca
    send_ca = testing.Relation(
        "send-ca-cert",
        remote_app_name="idp-ca",
        remote_app_data={"certificates": f'["{str(ca).strip()}"]'.replace("\n", "\\n")},
    )
    state = dataclasses.replace(running_leader, relations=running_leader.relations | {send_ca})
    ctx.run(ctx.on.relation_changed(send_ca), state)
    settings = tomllib.loads((config_dir / "config.toml").read_text())
    assert settings["trusted_ca_file"] == "/etc/cluster-manager/trusted-ca.pem"
    trusted = (config_dir / "trusted-ca.pem").read_text()
    assert trusted.strip() == str(ca).strip()


def test_removed_ca_integration_drops_the_trusted_ca_setting(
    config_dir, ctx, running_leader, test_ca
):
    ca, _ = test_ca
    send_ca = testing.Relation(
        "send-ca-cert",
        remote_app_name="idp-ca",
        remote_app_data={"certificates": f'["{str(ca).strip()}"]'.replace("\n", "\\n")},
    )
    state = dataclasses.replace(running_leader, relations=running_leader.relations | {send_ca})
    with_ca = ctx.run(ctx.on.relation_changed(send_ca), state)
    ctx.run(ctx.on.relation_broken(with_ca.get_relation(send_ca.id)), with_ca)
    assert "trusted_ca_file" not in tomllib.loads((config_dir / "config.toml").read_text())


def test_new_database_endpoint_is_written_to_the_dsn(config_dir, ctx, running_leader):
    database = relation(running_leader, "database")
    data = dict(database.remote_app_data)
    data["endpoints"] = "10.1.2.3:5432"
    moved = dataclasses.replace(database, remote_app_data=data)
    state = dataclasses.replace(
        running_leader, relations=(running_leader.relations - {database}) | {moved}
    )
    ctx.run(ctx.on.relation_changed(moved), state)
    dsn = tomllib.loads((config_dir / "config.toml").read_text())["database_dsn"]
    assert dsn.endswith("@10.1.2.3:5432/cluster_manager")


@pytest.mark.parametrize("endpoint", ["database", "certificates"])
def test_removed_integration_stops_the_workload(ctx, running_leader, endpoint):
    integration = relation(running_leader, endpoint)
    out = ctx.run(ctx.on.relation_broken(integration), running_leader)
    assert out.get_container("cluster-manager").service_statuses == {
        "cluster-manager": ops.pebble.ServiceStatus.INACTIVE
    }
    assert out.unit_status == testing.BlockedStatus(f"missing integrations: {endpoint}")


def test_workload_is_not_started_before_its_certificate_arrives(ctx, leader_state):
    certificates = relation(leader_state, "certificates")
    unanswered = dataclasses.replace(certificates, remote_app_data={})
    state = dataclasses.replace(
        leader_state, relations=(leader_state.relations - {certificates}) | {unanswered}
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.get_container("cluster-manager").plan.services == {}
    assert out.unit_status == testing.WaitingStatus(
        f"waiting for a certificate for {MANAGEMENT_DOMAIN}"
    )


def test_pebble_ready_configures_a_restarted_container(config_dir, ctx, running_leader, container):
    fresh = dataclasses.replace(
        running_leader,
        containers={container},
    )
    out = ctx.run(ctx.on.pebble_ready(container), fresh)
    assert "serve" in out.get_container("cluster-manager").plan.services["cluster-manager"].command
    assert tomllib.loads((config_dir / "config.toml").read_text())["management_url"]


def test_rotated_database_password_is_written_to_the_dsn(config_dir, ctx, running_leader):
    secret = next(s for s in running_leader.secrets if s.owner is None)
    rotated = dataclasses.replace(
        secret, latest_content={"username": "relation_7", "password": "new-password"}
    )
    state = dataclasses.replace(
        running_leader, secrets=(running_leader.secrets - {secret}) | {rotated}
    )
    ctx.run(ctx.on.secret_changed(rotated), state)
    dsn = tomllib.loads((config_dir / "config.toml").read_text())["database_dsn"]
    assert dsn.startswith("postgresql://relation_7:new-password@")


def test_renewed_management_certificate_is_served_after_a_restart(
    config_dir, ctx, running_leader, test_ca
):
    certificates = relation(running_leader, "certificates")
    renewed = sign_requested_certificates(certificates, *test_ca)
    assert renewed.remote_app_data != certificates.remote_app_data
    state = dataclasses.replace(
        running_leader, relations=(running_leader.relations - {certificates}) | {renewed}
    )
    since = len(ctx.juju_log)
    ctx.run(ctx.on.relation_changed(renewed), state)
    served = (config_dir / "management.crt").read_text()
    issued = json.loads(renewed.remote_app_data["certificates"])[0]["certificate"]
    assert served.startswith(issued.strip())
    assert "workload configuration changed; restarted" in new_logs(ctx, since)


def test_internal_key_is_64_hex_and_shared_with_every_unit(
    config_dir, other_ctx, running_leader, tmp_path, monkeypatch
):
    key = (config_dir / "internal.key").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert (config_dir / "internal.key").stat().st_mode & 0o777 == 0o600
    other_dir = tmp_path / "unit-1-etc"
    other_dir.mkdir()
    container = testing.Container(
        "cluster-manager",
        can_connect=True,
        mounts={"config": testing.Mount(location="/etc/cluster-manager", source=other_dir)},
    )
    monkeypatch.setattr(unit_address, "fqdn", lambda: unit_host(1))
    other_ctx.run(other_ctx.on.config_changed(), non_leader_view(running_leader, container))
    assert (other_dir / "internal.key").read_text() == key
    settings = tomllib.loads((other_dir / "config.toml").read_text())
    assert settings["internal_address"] == f"{unit_host(1)}:9004"


def test_internal_key_survives_reconciles(config_dir, ctx, running_leader):
    key = (config_dir / "internal.key").read_text()
    ctx.run(ctx.on.config_changed(), running_leader)
    assert (config_dir / "internal.key").read_text() == key


def test_unit_opens_the_ports_it_serves(running_leader):
    assert {port.port for port in running_leader.opened_ports} == {9000, 9001, 9002, 9004}


def test_workload_version_comes_from_the_image(ctx, running_leader, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    (share / "version").write_text("0.1.0\n")
    container = running_leader.get_container("cluster-manager")
    with_version = dataclasses.replace(
        container,
        mounts={
            **container.mounts,
            "share": testing.Mount(location="/usr/share/cluster-manager", source=share),
        },
    )
    state = dataclasses.replace(running_leader, containers={with_version})
    out = ctx.run(ctx.on.pebble_ready(with_version), state)
    assert out.workload_version == "0.1.0"
