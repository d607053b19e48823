"""``python -m cluster_manager.bench BENCHMARK [options]``, BENCHMARK one of BENCHMARKS.

Each benchmark takes its own options (``... BENCH --help``) and prints its table with the
baseline it measured in the same run.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "heartbeats": "heartbeats per second and CPU per heartbeat, against a do-nothing baseline",
    "nginx": "heartbeats side by side with one nginx worker on the same traffic, in one run",
    "workers": "heartbeats with 1 and 2 worker processes against the baseline, in one run",
    "management": "the Management API's list and overview with a large fleet",
    "forwarding": "what forwarding metrics to Prometheus costs per heartbeat",
    "tunnel": "reverse tunnels: idle memory and requests through them",
    "fleet": "fleet instance search and bulk restart over 1,000 clusters' tunnels",
}


def main(argv: list[str]) -> int:
    """Run the benchmark named first with the remaining arguments."""
    if not argv or argv[0] not in BENCHMARKS:
        lines = [f"usage: python -m cluster_manager.bench {{{','.join(BENCHMARKS)}}} [options]"]
        lines += [f"  {name:<11} {what}" for name, what in BENCHMARKS.items()]
        print("\n".join(lines), file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module = importlib.import_module(f"cluster_manager.bench.{argv[0]}")
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
