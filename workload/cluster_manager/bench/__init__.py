"""The benchmarks, one entry point: ``python -m cluster_manager.bench BENCH [options]``.

``heartbeats`` (issue 2): simulated clusters send real-client-style heartbeats as fast as they
can, first to ``cluster-manager serve`` on an embedded PostgreSQL, then to a baseline with the
same TLS stack and a handler that does no work; the table gives heartbeats/s, p50/p99 latency
and CPU, and our throughput as a ratio of the baseline's. ``management``, ``forwarding`` and
``tunnel`` measure the Management API, forwarding to Prometheus and the reverse tunnels.
"""
