"""The cluster-manager command: the charm's actions run it, so its output is a contract."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from cluster_manager.certificates import certificate_file_fingerprint
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.join_token import JoinToken
from support import write_config


@pytest.fixture
def cli(settings, tmp_path):
    config = write_config(tmp_path / "config.toml", settings)

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cluster_manager.cli",
            "--config",
            str(config),
            *args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await process.communicate()
        return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())

    return run


async def test_token_create_prints_only_the_token(cli, settings):
    result = await cli("token", "create", "edge-1", "--description", "lab", "--expires-in", "2h")

    assert result.returncode == 0, result.stderr
    token = JoinToken.decode(result.stdout.strip())
    assert result.stdout.count("\n") == 1
    assert token.server_name == "edge-1"
    assert token.addresses == settings.connector_addresses
    assert token.fingerprint == certificate_file_fingerprint(settings.connector_cert_file)


async def test_token_list_never_shows_secrets_and_revoke_removes(cli):
    created = await cli("token", "create", "edge-1")
    secret = JoinToken.decode(created.stdout.strip()).secret

    listed = await cli("token", "list", "--format", "json")
    assert [t["name"] for t in json.loads(listed.stdout)] == ["edge-1"]
    assert secret not in listed.stdout
    table = await cli("token", "list")
    assert table.stdout.splitlines()[0].split() == ["NAME", "EXPIRES_AT", "DESCRIPTION"]

    assert (await cli("token", "revoke", "edge-1")).returncode == 0
    assert json.loads((await cli("token", "list", "--format", "json")).stdout) == []


async def test_cluster_commands_show_the_upstream_field_names(cli, server):
    token = (await cli("token", "create", "edge-1")).stdout.strip()
    cluster = SimulatedCluster("edge-1")
    await cluster.join(token)
    await cluster.heartbeat()

    listed = json.loads((await cli("cluster", "list", "--format", "json")).stdout)
    shown = json.loads((await cli("cluster", "show", "edge-1", "--format", "json")).stdout)

    assert [c["name"] for c in listed] == ["edge-1"]
    expected = {
        "name",
        "description",
        "status",
        "fingerprint",
        "joined_at",
        "last_status_update_at",
        "instance_count",
        "member_count",
        "disk_threshold",
        "memory_threshold",
        "instance_statuses",
        "memory_usage",
        "memory_total_amount",
        "member_statuses",
        "storage_pool_usages",
        "cpu_load_1",
        "ui_url",
    }
    assert expected <= set(shown)
    assert shown["fingerprint"] == cluster.fingerprint
    assert (await cli("cluster", "remove", "edge-1")).returncode == 0
    assert json.loads((await cli("cluster", "list", "--format", "json")).stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("token", "create", "bad name!"), "cluster_name: expected 1-63 letters"),
        (("token", "create", "edge-1", "--expires-in", "soon"), "expires_in must be a duration"),
        (("token", "revoke", "nobody"), "no join token for 'nobody'"),
        (("cluster", "show", "nobody"), "no cluster named 'nobody'"),
        (("cluster", "remove", "nobody"), "no cluster named 'nobody'"),
    ],
)
async def test_failures_exit_1_with_one_error_line(cli, args, message):
    result = await cli(*args)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


async def test_second_token_for_a_name_is_a_conflict(cli):
    await cli("token", "create", "edge-1")

    result = await cli("token", "create", "edge-1")

    assert result.returncode == 1
    assert "already exists" in result.stderr
