"""Contract with traefik-k8s: the ``traefik_route`` exchange, read from the provider's code.

canonical/traefik-k8s-operator (main, 8ab4a7e):
- the provider publishes ``external_host`` and ``scheme`` in its application databag
  (lib/charms/traefik_k8s/v0/traefik_route.py:271-272);
- it reads the requirer's ``config`` (YAML, :299) and ``raw``, which counts only if it is
  exactly the string ``"True"`` (:306);
- unless raw, it adds for every router a sibling ``<router>-tls`` with the same rule on
  ``websecure`` that terminates TLS (src/charm.py:1610-1614, src/traefik.py:663-693);
- it runs Traefik 2.11 (charmcraft.yaml:37, ``ubuntu/traefik:2.11``), whose TCP load
  balancer knows ``servers``, ``serversTransport``, ``terminationDelay`` and
  ``proxyProtocol`` only: a TCP
  ``healthCheck`` (Traefik 3.5) makes its file provider reject the whole configuration.
"""

from __future__ import annotations

import dataclasses

import pytest
import traefik_k8s as provider_model
import yaml
from charm_scenario import CONNECTOR_DOMAIN, MANAGEMENT_DOMAIN, relation, with_relations
from ops import testing

# Keys Traefik 2.11 accepts in the TCP dynamic configuration this charm renders.
TRAEFIK_2_11_TCP_ROUTER = {"entryPoints", "middlewares", "rule", "priority", "service", "tls"}
TRAEFIK_2_11_TCP_ROUTER_TLS = {"passthrough", "options", "certResolver", "domains"}
TRAEFIK_2_11_TCP_LOAD_BALANCER = {
    "servers",
    "serversTransport",
    "terminationDelay",
    "proxyProtocol",
}
TRAEFIK_2_11_TCP_SERVER = {"address", "tls"}


def traefik_k8s_view(databag: dict[str, str]) -> dict:
    """The dynamic configuration traefik-k8s loads for a requirer's application databag."""
    return provider_model.dynamic_config(databag)


@pytest.fixture
def traefik_k8s() -> testing.Relation:
    """traefik-k8s once it published where it is reached (traefik_route.py:271-272)."""
    return testing.Relation(
        "traefik-route",
        remote_app_name="traefik-k8s",
        remote_app_data={"external_host": "10.0.0.50", "scheme": "https"},
    )


def _published(ctx, running_leader, traefik_k8s) -> dict[str, str]:
    state = with_relations(running_leader, traefik_k8s)
    out = ctx.run(ctx.on.relation_changed(traefik_k8s, remote_unit=0), state)
    return dict(out.get_relation(traefik_k8s.id).local_app_data)


def test_raw_is_the_exact_string_traefik_k8s_compares_with(ctx, running_leader, traefik_k8s):
    assert _published(ctx, running_leader, traefik_k8s)["raw"] == "True"


def test_traefik_k8s_adds_no_tls_terminating_router(ctx, running_leader, traefik_k8s):
    loaded = traefik_k8s_view(_published(ctx, running_leader, traefik_k8s))
    routers = loaded["tcp"]["routers"]
    assert not [name for name in routers if name.endswith("-tls")]
    assert all(router["tls"] == {"passthrough": True} for router in routers.values())
    assert {router["rule"] for router in routers.values()} == {
        f"HostSNI(`{MANAGEMENT_DOMAIN}`)",
        f"HostSNI(`{CONNECTOR_DOMAIN}`)",
    }


def test_without_raw_traefik_k8s_would_hijack_both_domains(ctx, running_leader, traefik_k8s):
    """The failure the exact ``raw`` value prevents, shown on the same published routes."""
    databag = _published(ctx, running_leader, traefik_k8s)
    for raw in (None, "true", "TRUE"):
        changed = {k: v for k, v in databag.items() if k != "raw"}
        if raw is not None:
            changed["raw"] = raw
        routers = traefik_k8s_view(changed)["tcp"]["routers"]
        assert len([name for name in routers if name.endswith("-tls")]) == 2


def test_default_configuration_is_valid_for_traefik_2_11(ctx, running_leader, traefik_k8s):
    loaded = traefik_k8s_view(_published(ctx, running_leader, traefik_k8s))
    assert set(loaded) == {"tcp"}
    for router in loaded["tcp"]["routers"].values():
        assert set(router) <= TRAEFIK_2_11_TCP_ROUTER
        assert set(router["tls"]) <= TRAEFIK_2_11_TCP_ROUTER_TLS
    for service in loaded["tcp"]["services"].values():
        assert set(service) == {"loadBalancer"}
        assert set(service["loadBalancer"]) <= TRAEFIK_2_11_TCP_LOAD_BALANCER
        for server in service["loadBalancer"]["servers"]:
            assert set(server) <= TRAEFIK_2_11_TCP_SERVER


def test_health_check_is_only_sent_when_asked(ctx, running_leader, traefik_k8s):
    asked = dataclasses.replace(
        running_leader, config={**running_leader.config, "traefik-health-check": True}
    )
    databag = _published(ctx, asked, traefik_k8s)
    services = yaml.safe_load(databag["config"])["tcp"]["services"].values()
    assert all("healthCheck" in service["loadBalancer"] for service in services)


def test_routes_are_sent_before_traefik_publishes_its_host(ctx, running_leader):
    """traefik-k8s reads ``config`` as soon as it is there (traefik_route.py:279-299)."""
    fresh = testing.Relation("traefik-route", remote_app_name="traefik-k8s")
    out = ctx.run(
        ctx.on.relation_joined(fresh, remote_unit=0), with_relations(running_leader, fresh)
    )
    assert "config" in out.get_relation(fresh.id).local_app_data
    assert relation(out, "traefik-route").local_app_data["raw"] == "True"
