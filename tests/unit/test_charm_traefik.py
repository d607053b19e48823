"""Traefik: TLS-passthrough TCP routes by SNI to every unit."""

import dataclasses
import tomllib

import yaml
from charm_scenario import (
    APP,
    CONNECTOR_DOMAIN,
    MANAGEMENT_DOMAIN,
    UNIT_0_HOST,
    non_leader_view,
    relation,
    unit_host,
)
from ops import testing

import unit_address

_host = unit_host


def _peers(*units: int) -> dict[int, dict[str, str]]:
    """Peer unit databags as each unit's charm publishes them (its own address)."""
    return {unit: {"address": unit_host(unit)} for unit in units}


def _submitted(state: testing.State) -> dict:
    return yaml.safe_load(relation(state, "traefik-route").local_app_data["config"])


def test_routes_pass_tls_through_by_sni_to_each_server(running_leader):
    tcp = _submitted(running_leader)["tcp"]
    assert tcp["routers"] == {
        f"dev-{APP}-management": {
            "rule": f"HostSNI(`{MANAGEMENT_DOMAIN}`)",
            "entryPoints": ["websecure"],
            "service": f"dev-{APP}-management",
            "tls": {"passthrough": True},
        },
        f"dev-{APP}-connector": {
            "rule": f"HostSNI(`{CONNECTOR_DOMAIN}`)",
            "entryPoints": ["websecure"],
            "service": f"dev-{APP}-connector",
            "tls": {"passthrough": True},
        },
    }
    # No TCP health check by default: traefik-k8s's Traefik 2.11 would refuse the whole file.
    assert tcp["services"] == {
        f"dev-{APP}-management": {"loadBalancer": {"servers": [{"address": f"{_host(0)}:9000"}]}},
        f"dev-{APP}-connector": {"loadBalancer": {"servers": [{"address": f"{_host(0)}:9001"}]}},
    }


def test_routes_ask_traefik_k8s_to_take_them_raw(running_leader):
    assert relation(running_leader, "traefik-route").local_app_data["raw"] == "True"


def test_health_checks_only_when_the_operator_asks(ctx, running_leader):
    state = dataclasses.replace(
        running_leader, config={**running_leader.config, "traefik-health-check": True}
    )
    out = ctx.run(ctx.on.config_changed(), state)
    for service in _submitted(out)["tcp"]["services"].values():
        assert service["loadBalancer"]["healthCheck"] == {"interval": "5s", "timeout": "3s"}


def test_new_units_join_the_load_balancer(ctx, running_leader):
    peer = relation(running_leader, "cluster-manager-peers")
    scaled = dataclasses.replace(peer, peers_data=_peers(1, 2))
    state = dataclasses.replace(
        running_leader, relations=(running_leader.relations - {peer}) | {scaled}
    )
    out = ctx.run(ctx.on.relation_changed(scaled, remote_unit=2), state)
    services = _submitted(out)["tcp"]["services"]
    assert services[f"dev-{APP}-connector"]["loadBalancer"]["servers"] == [
        {"address": f"{_host(n)}:9001"} for n in (0, 1, 2)
    ]
    assert services[f"dev-{APP}-management"]["loadBalancer"]["servers"] == [
        {"address": f"{_host(n)}:9000"} for n in (0, 1, 2)
    ]


def test_departed_units_leave_the_load_balancer(ctx, running_leader):
    peer = relation(running_leader, "cluster-manager-peers")
    scaled = dataclasses.replace(peer, peers_data=_peers(1))
    state = dataclasses.replace(
        running_leader, relations=(running_leader.relations - {peer}) | {scaled}
    )
    state = ctx.run(ctx.on.relation_changed(scaled, remote_unit=1), state)
    shrunk = dataclasses.replace(relation(state, "cluster-manager-peers"), peers_data={})
    state = dataclasses.replace(
        state, relations=(state.relations - {relation(state, "cluster-manager-peers")}) | {shrunk}
    )
    out = ctx.run(ctx.on.relation_departed(shrunk, remote_unit=1, departing_unit=1), state)
    servers = _submitted(out)["tcp"]["services"][f"dev-{APP}-connector"]["loadBalancer"]
    assert servers["servers"] == [{"address": f"{_host(0)}:9001"}]


def test_changed_domain_moves_the_route(ctx, running_leader):
    state = dataclasses.replace(
        running_leader,
        config={**running_leader.config, "management-api-domain": "ui.example.org"},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    router = _submitted(out)["tcp"]["routers"][f"dev-{APP}-management"]
    assert router["rule"] == "HostSNI(`ui.example.org`)"


def test_traefik_joining_later_gets_the_routes(ctx, running_leader):
    traefik = relation(running_leader, "traefik-route")
    fresh = testing.Relation("traefik-route", remote_app_name="traefik-k8s")
    state = dataclasses.replace(
        running_leader, relations=(running_leader.relations - {traefik}) | {fresh}
    )
    out = ctx.run(ctx.on.relation_joined(fresh, remote_unit=0), state)
    assert set(_submitted(out)["tcp"]["routers"]) == {
        f"dev-{APP}-management",
        f"dev-{APP}-connector",
    }


def test_only_the_leader_writes_routes(other_ctx, running_leader, container):
    state = non_leader_view(running_leader, container)
    traefik = relation(state, "traefik-route")
    emptied = dataclasses.replace(traefik, local_app_data={})
    state = dataclasses.replace(state, relations=(state.relations - {traefik}) | {emptied})
    out = other_ctx.run(other_ctx.on.relation_changed(emptied, remote_unit=0), state)
    assert relation(out, "traefik-route").local_app_data == {}


def test_without_traefik_tokens_name_the_units_not_the_connector_domain(
    config_dir, ctx, running_leader
):
    traefik = relation(running_leader, "traefik-route")
    out = ctx.run(ctx.on.relation_broken(traefik), running_leader)
    settings = tomllib.loads((config_dir / "config.toml").read_text())
    # The connector domain points at Traefik; without it only the units serve the connector.
    assert settings["connector_addresses"] == [f"{UNIT_0_HOST}:9001"]
    assert out.unit_status == testing.BlockedStatus("missing integrations: traefik-route")


def test_unit_without_a_domain_name_is_reached_on_its_ingress_address(
    ctx, running_leader, monkeypatch
):
    monkeypatch.setattr(unit_address, "fqdn", lambda: "pod-without-domain")
    out = ctx.run(ctx.on.config_changed(), running_leader)
    servers = _submitted(out)["tcp"]["services"][f"dev-{APP}-connector"]["loadBalancer"]
    assert servers["servers"] == [{"address": "192.0.2.0:9001"}]


def test_peer_addresses_that_are_not_host_names_are_ignored(ctx, running_leader):
    peer = relation(running_leader, "cluster-manager-peers")
    scaled = dataclasses.replace(
        peer, peers_data={1: {"address": "evil.example.com:1/x"}, 2: {"address": unit_host(2)}}
    )
    state = dataclasses.replace(
        running_leader, relations=(running_leader.relations - {peer}) | {scaled}
    )
    out = ctx.run(ctx.on.relation_changed(scaled, remote_unit=1), state)
    servers = _submitted(out)["tcp"]["services"][f"dev-{APP}-connector"]["loadBalancer"]
    assert servers["servers"] == [{"address": f"{_host(n)}:9001"} for n in (0, 2)]


def test_each_unit_publishes_its_address_to_its_peers(running_leader):
    peer = relation(running_leader, "cluster-manager-peers")
    assert peer.local_unit_data["address"] == UNIT_0_HOST
