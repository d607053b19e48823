"""Plain `tox` or `pytest` on a machine without a program the chosen tests run: one clear line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pytest_without_chromium(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run pytest where PATH holds Node.js and npm (the browser tests also need them) only."""
    for program in ("node", "npm"):
        found = shutil.which(program)
        assert found, f"{program} is needed to run this test"
        (tmp_path / program).symlink_to(found)
    environment = {k: v for k, v in os.environ.items() if k != "CLUSTER_MANAGER_CHROMIUM"}
    environment["PATH"] = str(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def test_missing_chromium_stops_the_run_with_one_line_naming_the_package(pytest_without_chromium):
    result = pytest_without_chromium(
        "tests/workload/test_ui_browser.py", "tests/workload/test_cli.py"
    )

    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "missing" in line]
    assert len(lines) == 1, result.stdout
    assert "missing chromium: apt-get install chromium " in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_tests_that_do_not_need_the_missing_program_still_run(pytest_without_chromium):
    result = pytest_without_chromium(
        "tests/workload/test_ui_browser.py",
        "tests/workload/test_cli.py",
        "-k",
        "options_are_accepted_after_the_command",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
