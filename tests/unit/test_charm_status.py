"""Unit status: Blocked names what is missing or wrong, Waiting while not ready, Active."""

import dataclasses

import pytest
from charm_scenario import CONFIG, relation, with_checks
from ops import pebble, testing


def _with_config(state: testing.State, **changes: str | float) -> testing.State:
    return dataclasses.replace(state, config={**state.config, **changes})


def test_ready_workload_is_active_with_its_urls(ctx, running_leader):
    out = ctx.run(ctx.on.update_status(), with_checks(running_leader, pebble.CheckStatus.UP))
    assert out.unit_status == testing.ActiveStatus(
        "UI https://mgmt.example.com, connector connector.example.com:443"
    )


def test_unready_workload_is_waiting(ctx, running_leader):
    out = ctx.run(ctx.on.update_status(), with_checks(running_leader, pebble.CheckStatus.DOWN))
    assert out.unit_status == testing.WaitingStatus("workload not ready (database unreachable?)")


def test_fresh_unit_names_every_missing_option(ctx, container):
    out = ctx.run(ctx.on.install(), testing.State(leader=True, containers={container}))
    assert out.unit_status == testing.BlockedStatus(
        "missing config: management-api-domain, cluster-connector-domain, oidc-issuer, "
        "oidc-client-id"
    )


def test_configured_unit_without_integrations_names_them(ctx, container):
    state = testing.State(leader=True, config=CONFIG, containers={container})
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.BlockedStatus("missing integrations: database, certificates")


def test_missing_traefik_route_blocks_but_the_workload_runs(ctx, running_leader):
    traefik = next(r for r in running_leader.relations if r.endpoint == "traefik-route")
    out = ctx.run(ctx.on.relation_broken(traefik), running_leader)
    assert out.unit_status == testing.BlockedStatus("missing integrations: traefik-route")
    assert out.get_container("cluster-manager").service_statuses == {
        "cluster-manager": pebble.ServiceStatus.ACTIVE
    }


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("management-api-domain", "not a domain", "management-api-domain: 'not a domain'"),
        ("cluster-connector-domain", "UPPER.example.com", "cluster-connector-domain:"),
        ("cluster-connector-domain", "mgmt.example.com", "must differ from management-api"),
        ("oidc-issuer", "http://idp.example.com", "oidc-issuer: 'http://idp.example.com'"),
        ("log-level", "chatty", "log-level: 'chatty' is not one of"),
        ("stale-after-intervals", 0.5, "stale-after-intervals: must be at least 1"),
        ("oidc-groups-claim", " ", "oidc-groups-claim: must not be empty"),
        ("oidc-admin-group", "", "oidc-admin-group: must not be empty"),
        ("workers", "0", "workers: '0' is not 'auto' or 1 to 64"),
        ("workers", "many", "workers: 'many' is not 'auto' or 1 to 64"),
    ],
)
def test_invalid_option_blocks_naming_the_option_and_keeps_serving(
    config_dir, ctx, running_leader, option, value, message
):
    before = (config_dir / "config.toml").read_text()
    out = ctx.run(ctx.on.config_changed(), _with_config(running_leader, **{option: value}))
    assert isinstance(out.unit_status, testing.BlockedStatus)
    assert out.unit_status.message.startswith("invalid config: ")
    assert message in out.unit_status.message
    # A typo is no outage: the workload keeps running on the last good configuration.
    assert out.get_container("cluster-manager").service_statuses == {
        "cluster-manager": pebble.ServiceStatus.ACTIVE
    }
    assert (config_dir / "config.toml").read_text() == before
    assert (
        out.get_container("cluster-manager").plan
        == running_leader.get_container("cluster-manager").plan
    )


def test_fixed_option_is_applied_after_a_typo(config_dir, ctx, running_leader):
    typo = ctx.run(ctx.on.config_changed(), _with_config(running_leader, **{"log-level": "x"}))
    fixed = ctx.run(ctx.on.config_changed(), _with_config(typo, **{"log-level": "debug"}))
    assert 'log_level = "DEBUG"' in (config_dir / "config.toml").read_text()
    assert not isinstance(fixed.unit_status, testing.BlockedStatus)


def test_unset_required_option_blocks_and_keeps_serving(config_dir, ctx, running_leader):
    before = (config_dir / "config.toml").read_text()
    out = ctx.run(ctx.on.config_changed(), _with_config(running_leader, **{"oidc-client-id": ""}))
    assert out.unit_status == testing.BlockedStatus("missing config: oidc-client-id")
    assert out.get_container("cluster-manager").service_statuses == {
        "cluster-manager": pebble.ServiceStatus.ACTIVE
    }
    assert (config_dir / "config.toml").read_text() == before


def test_unit_without_pebble_waits_for_it(ctx, leader_state):
    cut_off = dataclasses.replace(leader_state.get_container("cluster-manager"), can_connect=False)
    state = dataclasses.replace(leader_state, containers={cut_off})
    out = ctx.run(ctx.on.update_status(), state)
    assert out.unit_status == testing.WaitingStatus("waiting for Pebble in the workload container")


def test_database_without_credentials_yet_waits(ctx, running_leader):
    database = next(r for r in running_leader.relations if r.endpoint == "database")
    unanswered = dataclasses.replace(database, remote_app_data={})
    state = dataclasses.replace(
        running_leader, relations=(running_leader.relations - {database}) | {unanswered}
    )
    out = ctx.run(ctx.on.relation_changed(unanswered), state)
    assert out.unit_status == testing.WaitingStatus(
        "waiting for postgresql-k8s to create the database"
    )


def test_typo_never_stops_a_running_service_even_without_remembered_options(ctx, running_leader):
    """A unit whose charm state holds no last good options (e.g. upgraded) still serves."""
    state = dataclasses.replace(
        _with_config(running_leader, **{"management-api-domain": "Not A Domain"}),
        stored_states=set(),
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status.message.startswith("invalid config: management-api-domain")
    assert out.get_container("cluster-manager").service_statuses == {
        "cluster-manager": pebble.ServiceStatus.ACTIVE
    }
    # The certificate in use is still asked for, and Traefik keeps its routes.
    for endpoint in ("certificates", "traefik-route"):
        assert (
            relation(out, endpoint).local_app_data
            == relation(running_leader, endpoint).local_app_data
        )
