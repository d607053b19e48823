"""The cluster-manager command: the charm's actions run it, so its output is a contract."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster_manager.certificates import certificate_file_fingerprint
from cluster_manager.embedded_postgres import SHARED_ROOT
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


async def test_options_are_accepted_after_the_command(settings, tmp_path):
    config = write_config(tmp_path / "config.toml", settings)
    before = await _cluster_manager("--config", str(config), "token", "create", "edge-1")
    after = await _cluster_manager("token", "list", "--format", "json", "--config", str(config))

    assert before.returncode == 0, before.stderr
    assert after.returncode == 0, after.stderr
    assert [t["name"] for t in json.loads(after.stdout)] == ["edge-1"]


async def test_state_dir_after_the_command_finds_the_demo_config(settings, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    write_config(state / "config.toml", settings)

    created = await _cluster_manager("token", "create", "edge-2", "--state-dir", str(state))
    listed = await _cluster_manager("token", "list", "--state-dir", str(state), "--format", "json")

    assert created.returncode == 0, created.stderr
    assert [t["name"] for t in json.loads(listed.stdout)] == ["edge-2"]


async def _cluster_manager(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cluster_manager.cli",
        *args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await process.communicate()
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


class Demo:
    """`cluster-manager demo --state-dir STATE` started from ``cwd``, read until it is running."""

    def __init__(self, cwd: Path, state: Path) -> None:
        self.cwd = cwd
        self.state = state
        self.output = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the demo (the option after the command, as users type it)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cluster_manager.cli", "demo", "--state-dir", str(self.state)],
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=open(self.cwd / "demo.log", "wb"),  # noqa: SIM115 - owned by the child
        )

    def wait_running(self, timeout: float = 180) -> dict[str, str]:
        """The demo's banner as {label: value}, once it says it is running."""
        assert self.process is not None
        assert self.process.stdout is not None
        stdout = self.process.stdout.fileno()
        os.set_blocking(stdout, False)
        deadline = time.monotonic() + timeout
        while "Press Ctrl-C" not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.cwd / "demo.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"demo not running:\n{self.output}\n{log}")
            with contextlib.suppress(BlockingIOError):
                self.output += os.read(stdout, 65536).decode()
            time.sleep(0.2)
        banner = {}
        for line in self.output.splitlines():
            label, sep, value = line.strip().partition(": ")
            if sep and not label.startswith("microcloud"):
                banner[label] = value.strip()
        return banner

    def ports(self) -> set[int]:
        """Every port the banner names."""
        return {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", self.output)}

    def stop(self) -> None:
        """Ctrl-C, as a user stops it; then remove a relocated PostgreSQL data folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        data = re.search(r"PostgreSQL data: +(\S+)", self.output)
        if data and Path(data[1]).parent.parent == SHARED_ROOT:
            shutil.rmtree(Path(data[1]).parent, ignore_errors=True)


@pytest.fixture
def private_folder() -> Iterator[Path]:
    """A folder only its owner may enter (mode 0700), like root's home in a container."""
    folder = Path(tempfile.mkdtemp(prefix="mcm-test-demo-"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def start_demo(private_folder: Path) -> Iterator[Callable[[str], Demo]]:
    """Start demos whose state folders are inside the private folder; stop them afterwards."""
    started: list[Demo] = []

    def start(name: str) -> Demo:
        cwd = private_folder / name
        cwd.mkdir(mode=0o700)
        demo = Demo(cwd, cwd / "state")
        started.append(demo)
        demo.start()
        return demo

    yield start
    for demo in started:
        demo.stop()


def _ready(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own demo
        return response.status


async def test_demo_runs_from_a_private_folder_and_says_where_the_data_is(start_demo):
    demo = start_demo("clone")
    banner = await asyncio.to_thread(demo.wait_running)

    assert await asyncio.to_thread(_ready, banner["Health and metrics"]) == 200
    data = Path(banner["PostgreSQL data"])
    assert (data / "PG_VERSION").exists()
    if os.geteuid() == 0:  # PostgreSQL runs as another user, who cannot enter the folder
        assert SHARED_ROOT in data.parents
        assert data.parent.stat().st_uid != 0
        assert stat.S_IMODE(data.parent.stat().st_mode) == 0o700
    else:
        assert demo.state in data.parents
    # Another command given the same state folder, after the command, reaches the demo's data.
    listed = await _cluster_manager(
        "token", "list", "--format", "json", "--state-dir", str(demo.state), cwd=demo.cwd
    )
    assert listed.returncode == 0, listed.stderr
    assert [t["name"] for t in json.loads(listed.stdout)] == ["microcloud-1"]


async def test_two_demos_started_at_once_both_run_on_distinct_ports(start_demo):
    first, second = start_demo("one"), start_demo("two")

    banners = await asyncio.gather(
        asyncio.to_thread(first.wait_running), asyncio.to_thread(second.wait_running)
    )

    assert not first.ports() & second.ports()
    for banner in banners:
        assert await asyncio.to_thread(_ready, banner["Health and metrics"]) == 200
