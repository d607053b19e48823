"""Settings come from a TOML file and environment variables, checked once at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_manager.cli import build_parser
from cluster_manager.settings import (
    Settings,
    SettingsError,
    describe,
    load_settings,
    markdown_table,
    render_config,
)


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
        ("connector_port = 70000\n", "connector_port: expected int ≤ 65535"),
        (
            "connector_addresses = ['no-port']\n",
            "^connector_addresses: 'no-port' is not host:port",
        ),
        ("stale_after_intervals = 0.5\n", "stale_after_intervals: expected float ≥ 1"),
        ("heartbeat_interval = 'soon'\n", "^heartbeat_interval: expected int, got str"),
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


def test_every_setting_is_described():
    for key, _default, description in describe():
        assert len(description) > 8, key


def test_serve_help_lists_every_setting_with_its_description(capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", "--help"])
    shown = capsys.readouterr().out

    assert exited.value.code == 0
    for key, default, description in describe():
        line = next(line for line in shown.splitlines() if line.split()[:1] == [key])
        assert description in line, line
        assert f"(default: {default})" in line or not default, line


def test_readme_settings_table_is_the_generated_one():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start, end = "<!-- settings-table:start -->\n", "<!-- settings-table:end -->"

    table = readme[readme.index(start) + len(start) : readme.index(end)]

    assert table == markdown_table(), "run: python -m cluster_manager.settings --markdown"
    assert len(table.splitlines()) == len(describe()) + 2


def test_replace_gives_a_changed_copy_and_keeps_the_original():
    settings = Settings(heartbeat_interval=10)

    changed = settings.replace(heartbeat_interval=20)

    assert (settings.stale_after_seconds, changed.stale_after_seconds) == (30.0, 60.0)
    with pytest.raises(AttributeError):
        settings.heartbeat_interval = 5  # type: ignore[misc]
