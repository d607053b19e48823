"""What goes into the charm: its own dependencies, never the workload's."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD_ONLY = {"microcloud-cluster-manager", "aiohttp", "asyncpg", "protobuf"}


def _charm_part() -> dict:
    return yaml.safe_load((ROOT / "charmcraft.yaml").read_text())["parts"]["charm"]


def _locked_closure(lock: dict, roots: list[str]) -> set[str]:
    """Every package uv installs for these locked dependencies, transitively."""
    packages = {package["name"]: package for package in lock["package"]}
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(dep["name"] for dep in packages[name].get("dependencies", []))
    return seen


def test_charm_build_leaves_out_the_default_workload_group():
    """The uv plugin runs ``uv sync``; the default group (the workload) must stay out."""
    environment = {
        key: value for item in _charm_part()["build-environment"] for key, value in item.items()
    }
    assert environment["UV_NO_DEFAULT_GROUPS"] in ("1", "true")
    assert not _charm_part().get("uv-groups")


def test_charm_dependencies_do_not_pull_in_the_workload():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    root = next(p for p in lock["package"] if p["name"] == "microcloud-cluster-manager-k8s")
    installed = _locked_closure(lock, [dep["name"] for dep in root["dependencies"]])
    assert {"ops", "cosl", "cryptography"} <= installed
    assert not installed & WORKLOAD_ONLY


def test_a_fresh_clone_still_runs_the_workload_with_uv_run():
    """``uv run cluster-manager demo`` from a clone: the workload stays the default group."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["uv"]["default-groups"] == ["workload"]
    assert pyproject["dependency-groups"]["workload"] == ["microcloud-cluster-manager"]
