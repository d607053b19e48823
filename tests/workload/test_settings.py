"""Settings come from a TOML file and environment variables, checked once at start."""

from __future__ import annotations

import pytest
from cluster_manager.settings import SettingsError, load_settings, render_config


def test_environment_overrides_the_file_and_lists_are_comma_separated(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(render_config({"connector_port": 7000, "log_level": "DEBUG"}))
    environ = {
        "CLUSTER_MANAGER_CONNECTOR_PORT": "7443",
        "CLUSTER_MANAGER_CONNECTOR_ADDRESSES": "mcm.example.com:443, 10.0.0.1:7443",
    }

    settings = load_settings(config, environ=environ)

    assert settings.connector_port == 7443
    assert settings.log_level == "DEBUG"
    assert settings.connector_addresses == ("mcm.example.com:443", "10.0.0.1:7443")


def test_config_file_named_by_environment(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(render_config({"database_dsn": "postgresql://x@db/mcm"}))

    settings = load_settings(environ={"CLUSTER_MANAGER_CONFIG": str(config)})

    assert settings.database_dsn == "postgresql://x@db/mcm"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 'blue'\n", "unknown setting 'colour'"),
        ("connector_port = 'high'\n", "connector_port"),
        ("connector_port = 70000\n", "connector_port: 70000 is not a TCP port"),
        ("connector_addresses = ['no-port']\n", "is not host:port"),
        ("stale_after_intervals = 0.5\n", "stale_after_intervals"),
        ("this is not toml", "config file"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(tmp_path, text, message):
    config = tmp_path / "config.toml"
    config.write_text(text)

    with pytest.raises(SettingsError, match=message):
        load_settings(config, environ={})


def test_rendered_config_reads_back_the_same(tmp_path):
    values = {"oidc_scopes": ["openid", "email"], "oidc_client_secret": 'a"b\\c', "ops_port": 1}
    config = tmp_path / "config.toml"
    config.write_text(render_config(values))

    settings = load_settings(config, environ={})

    assert settings.oidc_scopes == ("openid", "email")
    assert settings.oidc_client_secret == 'a"b\\c'
