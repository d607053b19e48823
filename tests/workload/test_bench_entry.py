"""The benchmarks: one entry point, and set-ups that always start."""

from __future__ import annotations

import pytest
from cluster_manager.bench.__main__ import BENCHMARKS, main
from cluster_manager.bench.management import write_session_key
from cluster_manager.management.sessions import load_key


def test_the_entry_point_names_every_benchmark(capsys):
    assert main([]) == 2

    usage = capsys.readouterr().err
    assert set(BENCHMARKS) == {
        "heartbeats",
        "nginx",
        "workers",
        "management",
        "forwarding",
        "tunnel",
        "fleet",
    }
    for name in BENCHMARKS:
        assert f"  {name} " in usage


@pytest.mark.parametrize(
    "name", ["heartbeats", "nginx", "workers", "management", "forwarding", "tunnel", "fleet"]
)
def test_each_benchmark_is_reached_through_the_entry_point(capsys, name):
    with pytest.raises(SystemExit) as stopped:
        main([name, "--help"])

    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m cluster_manager.bench {name}")


def test_management_bench_session_key_is_always_accepted(tmp_path):
    """Issue 19: 32 raw random bytes failed whenever one at either end was whitespace."""
    path = tmp_path / "session.key"
    for _ in range(300):  # raw bytes would fail about one time in twenty
        write_session_key(path)
        assert load_key(str(path)) == path.read_bytes()
