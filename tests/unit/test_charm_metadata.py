"""charmcraft.yaml and the code agree: nothing used undeclared, nothing declared unhandled."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from ops import testing

import charm
from actions import ClusterParams, EnrollClusterParams
from config import CharmConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def metadata() -> dict:
    return yaml.safe_load((ROOT / "charmcraft.yaml").read_text())


@pytest.fixture
def observed(ctx, container) -> set[tuple[str, str]]:
    """(emitter path, event kind) of every observation the charm and its libraries made."""
    with ctx(ctx.on.update_status(), testing.State(containers={container})) as manager:
        framework = manager.charm.framework
        return {(emitter, kind) for _, _, emitter, kind in framework._observers}


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def test_every_option_is_a_config_field_and_back(metadata):
    declared = set(metadata["config"]["options"])
    fields = {_dashed(f.name) for f in dataclasses.fields(CharmConfig)}
    assert declared == fields


def test_option_defaults_match_the_config_class(metadata):
    for field in dataclasses.fields(CharmConfig):
        option = metadata["config"]["options"][_dashed(field.name)]
        assert option["default"] == field.default, field.name
        expected = {str: "string", float: "float", bool: "boolean"}[type(field.default)]
        assert option["type"] == expected, field.name


def test_every_declared_action_is_observed_and_back(metadata, observed):
    declared = {_dashed(name) for name in metadata["actions"]}
    handled = {
        _dashed(kind.removesuffix("_action"))
        for emitter, kind in observed
        if kind.endswith("_action") and emitter == "ClusterManagerCharm/on"
    }
    assert declared == handled


@pytest.mark.parametrize(
    ("action", "params_class"),
    [
        ("enroll-cluster", EnrollClusterParams),
        ("revoke-join-token", ClusterParams),
        ("remove-cluster", ClusterParams),
    ],
)
def test_action_parameters_match_their_classes(metadata, action, params_class):
    declared = set(metadata["actions"][action].get("params", {}))
    assert declared == {_dashed(f.name) for f in dataclasses.fields(params_class)}
    required = {
        f.name for f in dataclasses.fields(params_class) if f.default is dataclasses.MISSING
    }
    assert set(metadata["actions"][action].get("required", [])) == required


def test_parameterless_actions_declare_no_parameters(metadata):
    for action in ("list-clusters", "list-join-tokens"):
        assert "params" not in metadata["actions"][action]


def test_every_endpoint_the_charm_names_is_declared_and_back(metadata):
    declared = set(metadata["requires"]) | set(metadata["provides"]) | set(metadata["peers"])
    used = {
        charm.DATABASE,
        charm.CERTIFICATES,
        charm.SEND_CA_CERT,
        charm.TRAEFIK_ROUTE,
        charm.SEND_REMOTE_WRITE,
        charm.METRICS_ENDPOINT,
        charm.GRAFANA_DASHBOARD,
        charm.GRAFANA_METADATA,
        charm.LOGGING,
        charm.PEER,
    }
    assert declared == used
    assert set(charm.REQUIRED_INTEGRATIONS) == {
        name for name, spec in metadata["requires"].items() if spec.get("optional") is False
    }


def test_every_declared_endpoint_has_its_events_observed(metadata, observed):
    kinds = {kind for _, kind in observed}
    for endpoint in {*metadata["requires"], *metadata["provides"], *metadata["peers"]}:
        prefix = endpoint.replace("-", "_") + "_relation_"
        assert {k for k in kinds if k.startswith(prefix)}, f"nothing observes {endpoint}"
        assert prefix + "changed" in kinds, f"{endpoint} changes are not observed"


def test_interfaces_are_the_expected_ones(metadata):
    interfaces = {name: spec["interface"] for name, spec in metadata["requires"].items()}
    assert interfaces == {
        "database": "postgresql_client",
        "certificates": "tls-certificates",
        "send-ca-cert": "certificate_transfer",
        "traefik-route": "traefik_route",
        "send-remote-write": "prometheus_remote_write",
        "grafana-metadata": "grafana_metadata",
        "logging": "loki_push_api",
    }
    provided = {name: spec["interface"] for name, spec in metadata["provides"].items()}
    assert provided == {
        "metrics-endpoint": "prometheus_scrape",
        "grafana-dashboard": "grafana_dashboard",
    }


def test_cos_integrations_are_optional(metadata):
    cos = {"send-remote-write", "grafana-metadata", "logging"}
    assert all(metadata["requires"][name]["optional"] is True for name in cos)
    assert all(spec["optional"] is True for spec in metadata["provides"].values())


def test_the_workload_container_and_its_image_are_declared(metadata, observed):
    assert set(metadata["containers"]) == {charm.CONTAINER}
    resource = metadata["containers"][charm.CONTAINER]["resource"]
    assert metadata["resources"][resource]["type"] == "oci-image"
    assert (
        "ClusterManagerCharm/on",
        f"{charm.CONTAINER.replace('-', '_')}_pebble_ready",
    ) in observed
