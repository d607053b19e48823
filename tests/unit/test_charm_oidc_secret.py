"""``oidc-client-secret``: a plain value (the upstream how-to) or a Juju user secret URI."""

from __future__ import annotations

import dataclasses
import tomllib

from charm_scenario import service_status
from ops import pebble, testing


def _settings(config_dir) -> dict:
    return tomllib.loads((config_dir / "config.toml").read_text())


def _with_secret(state: testing.State, secret: testing.Secret) -> testing.State:
    return dataclasses.replace(
        state,
        secrets=state.secrets | {secret},
        config={**state.config, "oidc-client-secret": secret.id},
    )


def test_plain_value_is_used_as_is(config_dir, running_leader):
    assert _settings(config_dir)["oidc_client_secret"] == "client-secret-value"


def test_user_secret_content_reaches_the_workload(config_dir, ctx, running_leader):
    secret = testing.Secret({"client-secret": "from-juju-secret"}, owner=None)
    ctx.run(ctx.on.config_changed(), _with_secret(running_leader, secret))
    settings = _settings(config_dir)
    assert settings["oidc_client_secret"] == "from-juju-secret"
    assert secret.id not in (config_dir / "config.toml").read_text()


def test_rotated_user_secret_is_written_again(config_dir, ctx, running_leader):
    secret = testing.Secret({"client-secret": "first"}, owner=None)
    state = ctx.run(ctx.on.config_changed(), _with_secret(running_leader, secret))
    rotated = dataclasses.replace(secret, latest_content={"client-secret": "second"})
    state = dataclasses.replace(state, secrets=(state.secrets - {secret}) | {rotated})
    ctx.run(ctx.on.secret_changed(rotated), state)
    assert _settings(config_dir)["oidc_client_secret"] == "second"


def test_ungranted_secret_blocks_naming_the_option_and_keeps_serving(
    config_dir, ctx, running_leader
):
    before = _settings(config_dir)
    state = dataclasses.replace(
        running_leader,
        config={**running_leader.config, "oidc-client-secret": "secret:aaaaaaaaaaaaaaaaaaaa"},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.BlockedStatus(
        "oidc-client-secret: cannot read secret:aaaaaaaaaaaaaaaaaaaa; run juju grant-secret for it"
    )
    assert _settings(config_dir) == before
    assert service_status(out) == pebble.ServiceStatus.ACTIVE


def test_secret_without_the_key_blocks_naming_it(ctx, running_leader):
    secret = testing.Secret({"password": "x"}, owner=None)
    out = ctx.run(ctx.on.config_changed(), _with_secret(running_leader, secret))
    assert out.unit_status == testing.BlockedStatus(
        f"oidc-client-secret: {secret.id} has no one-line client-secret"
    )


def test_malformed_secret_uri_is_invalid_config(ctx, running_leader):
    state = dataclasses.replace(
        running_leader,
        config={**running_leader.config, "oidc-client-secret": "secret:not/a/uri"},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.BlockedStatus(
        "invalid config: oidc-client-secret: 'secret:' but not a Juju secret URI"
    )
