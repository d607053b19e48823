"""Heartbeats side by side with nginx: ``python -m cluster_manager.bench nginx [options]``.

The comparison the issue is judged by: one nginx worker that only answers, against
``cluster-manager serve --workers 1`` with its PostgreSQL, on the same real-client traffic
(:mod:`.load`: a probe connection and a pinned mutual-TLS 1.3 connection per heartbeat, P-384
client certificates, heartbeat bodies with LXD metrics), in the same run.

nginx is Debian's (``apt-get install nginx-light`` or ``nginx``; the benchmark says so when it
is missing), configured like the connector: one worker, TLS 1.2/1.3 with the connector's
certificate, ``ssl_verify_client optional_no_ca`` (asks for a client certificate and accepts
any), the heartbeat body read (``return 200`` reads and discards it, decrypting every byte), an
empty 200 with ``Connection: close``. Its session settings are nginx's defaults.

Rows, each loaded for ``--duration`` seconds in turn (``--rounds`` times, alternating):
cluster-manager; nginx; the no-op baseline (the connector's TLS stack in Python); and, with
``--before DIR`` (repeatable), cluster-manager run from another checkout's ``workload``
directory on the same database (before/after comparisons in one run). The table gives
heartbeats/s, the server's CPU per heartbeat (nginx: master and worker; ours: the server
process, and PostgreSQL separately) and the ratios against nginx.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import platform
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cluster_manager.bench.heartbeats import measure
from cluster_manager.bench.heartbeats import parse_args as heartbeat_args
from cluster_manager.bench.load import Workers
from cluster_manager.bench.report import Row, table
from cluster_manager.bench.servers import (
    HOST,
    BaselineServer,
    RealServer,
    ServerProcess,
    connector_certificate,
    prioritise,
)
from cluster_manager.processes import stop_process
from cluster_manager.settings import Settings

logger = logging.getLogger("cluster_manager.bench")

INSTALL_HINT = "nginx not found: install Debian's (apt-get install nginx-light, or nginx)"

CONFIG = """\
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {directory}/nginx-body;
    proxy_temp_path {directory}/nginx-proxy;
    fastcgi_temp_path {directory}/nginx-fastcgi;
    uwsgi_temp_path {directory}/nginx-uwsgi;
    scgi_temp_path {directory}/nginx-scgi;
    keepalive_timeout 0;  # Connection: close, as the connector answers
    client_max_body_size {max_body};
    client_body_buffer_size 1m;
    server {{
        listen {host}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_verify_client optional_no_ca;
        # LXD's certificates are for serverAuth only, which OpenSSL's check of a client fails
        # (495, "The SSL certificate error") even under optional_no_ca: answer that as success.
        error_page 495 =200 /ok;
        location / {{ return 200; }}
        location = /ok {{ return 200; }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """Debian's nginx, if installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )


class NginxServer(ServerProcess):
    """One nginx worker (under its master) answering every request with an empty 200."""

    name = "nginx"

    def start(self, binary: str) -> None:
        """Write the configuration, start nginx in the foreground, wait until it listens."""
        cert, key, _ = connector_certificate(self.directory)
        config = self.directory / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # the worker reads our temp directory
        config.write_text(
            CONFIG.format(
                directory=self.directory,
                user=user,
                max_body=Settings().max_heartbeat_bytes,
                host=HOST,
                port=self.port,
                cert=cert,
                key=key,
            )
        )
        self._spawn([binary, "-p", str(self.directory), "-c", str(config), "-e", "stderr"])

    token_for = BaselineServer.token_for  # a token pointing at this port, any secret


class BeforeServer(RealServer):
    """``cluster-manager serve`` from another checkout, on the first server's database."""

    name = "cluster-manager-before"

    def __init__(self, directory: Path, first: RealServer, workload: Path) -> None:
        super().__init__(directory)
        self.first = first
        self.workload = workload
        self.port = first.port  # same tokens: the first one is stopped while this one runs

    def start(self) -> None:
        """Serve with the first server's configuration, another checkout's code."""
        self.config, self.dsn, self.postgres = (
            self.first.config,
            self.first.dsn,
            self.first.postgres,
        )
        environment = {**os.environ, "PYTHONPATH": str(self.workload)}
        log_file = self.directory / f"{self.name}.log"
        command = [sys.executable, "-m", "cluster_manager.cli", "--config", str(self.config)]
        from cluster_manager.bench.servers import wait_for_port

        with open(log_file, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [*command, "serve"], stdout=log, stderr=log, env=environment
            )
        wait_for_port(self.port, self.process, log_file, 60)

    def stop(self) -> None:
        """Stop the server only (PostgreSQL belongs to the first)."""
        stop_process(self.process, 15)


class Profiler:
    """py-spy (``uv pip install py-spy``) sampling the server over one window.

    Native stacks need py-spy to pause the process for each sample: that window's CPU figures
    are inflated, so profile in a run of its own.
    """

    def __init__(self, pid: int, output: Path, seconds: float) -> None:
        self.pid, self.output, self.seconds = pid, output, seconds
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start sampling (py-spy's raw format: a collapsed stack and its count a line)."""
        self.process = subprocess.Popen(  # noqa: S603
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(self.pid),
             "--native", "--rate", "250", "--duration", str(int(self.seconds)), "--format", "raw",
             "--output", str(self.output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def summary(self, top: int = 30) -> str:
        """Where the samples were: inclusive and self shares by function, as a Markdown table."""
        if self.process is not None:
            self.process.wait(self.seconds + 60)
        inclusive: dict[str, int] = {}
        own: dict[str, int] = {}
        total = 0
        for line in self.output.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            frames = [frame.split(" (")[0] for frame in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + count
            own[frames[-1]] = own.get(frames[-1], 0) + count
        lines = [f"Profile of the server ({total} samples, py-spy --native)", "",
                 "| function | inclusive % | self % |", "|---|---|---|"]  # fmt: skip
        for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(
                f"| `{frame[:90]}` | {100 * count / total:.1f} | "
                f"{100 * own.get(frame, 0) / total:.1f} |"
            )
        lines += ["", "| self (top) | % |", "|---|---|"]
        for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"| `{frame[:90]}` | {100 * count / total:.1f} |")
        return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Measured:
    """One server's windows, merged."""

    name: str
    rows: list[Row] = dataclasses.field(default_factory=list)

    @property
    def heartbeats(self) -> int:
        """Accepted heartbeats over every window."""
        return sum(r.heartbeats for r in self.rows)

    @property
    def rate(self) -> float:
        """Accepted heartbeats per second over every window."""
        seconds = sum(r.duration for r in self.rows)
        return self.heartbeats / seconds if seconds else 0.0

    def per_heartbeat_ms(self, what: str) -> float:
        """CPU-ms per accepted heartbeat: ``server`` or ``database``."""
        total = sum(
            (r.server_cpu if what == "server" else (r.database_cpu or 0.0)) for r in self.rows
        )
        return total / self.heartbeats * 1000 if self.heartbeats else float("nan")

    def p99_ms(self) -> float:
        """The 99th percentile latency over every window, ms."""
        latencies = sorted(x for r in self.rows for x in r.latencies)
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, round(0.99 * len(latencies)) - 1)] * 1000


def render(measured: list[Measured], nginx: Measured, parameters: dict[str, object]) -> str:
    """The report: per-window table, then the summary against nginx."""
    lines = [
        "# Heartbeats side by side with nginx",
        "",
        ", ".join(f"{key}: {value}" for key, value in parameters.items()),
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{ssl.OPENSSL_VERSION}, load average {os.getloadavg()[0]:.2f} at the end.",
        "",
        table([row for m in measured for row in m.rows]),
        "",
        "| server | heartbeats/s | x nginx | server CPU-ms/heartbeat "
        "| PostgreSQL CPU-ms/heartbeat | total CPU-ms/heartbeat | nginx CPU / ours | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    nginx_cpu = nginx.per_heartbeat_ms("server")
    for m in measured:
        server, database = m.per_heartbeat_ms("server"), m.per_heartbeat_ms("database")
        total = server + database
        lines.append(
            f"| {m.name} | {m.rate:.1f} | {m.rate / nginx.rate if nginx.rate else 0:.2f} | "
            f"{server:.2f} | {database:.2f} | {total:.2f} | {nginx_cpu / total:.2f} | "
            f"{m.p99_ms():.0f} |"
        )
    lines += [
        "",
        "'x nginx' compares throughput: it is fair only when the server, not the load generator "
        "or the machine's other work, is the bottleneck. 'nginx CPU / ours' compares the CPU a "
        "heartbeat costs (ours with PostgreSQL): it holds on a busy machine, and is what "
        "throughput on one dedicated core would be.",
    ]
    return "\n".join(lines) + "\n"


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=1, help="windows per server, alternating")
    parser.add_argument(
        "--before",
        type=Path,
        action="append",
        default=[],
        help="another checkout's workload directory to run as a row too (repeatable)",
    )
    parser.add_argument(
        "--profile", type=Path, help="sample our server with py-spy into this file (1st window)"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The heartbeat benchmark's options, and ``--rounds``, ``--before`` and ``--profile``."""
    return heartbeat_args(argv, "nginx", _options, description=(__doc__ or "").splitlines()[0])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; return the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    prioritise(args.nice)
    binary = nginx_binary()
    if binary is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    directory = Path(tempfile.mkdtemp(prefix="mcm-bench-"))
    directory.chmod(0o711)
    real, baseline, nginx = (
        RealServer(directory),
        BaselineServer(directory),
        NginxServer(directory),
    )
    befores = [BeforeServer(directory, real, path) for path in args.before]
    fast = BaselineServer(directory, uvloop=True) if importlib.util.find_spec("uvloop") else None
    names = [f"bench-{i:05d}" for i in range(args.clusters)]
    load = None
    try:
        real.start()
        baseline.start()
        nginx.start(binary)
        if fast is not None:
            fast.start()
        load = Workers(names, args.processes, args.metrics_kib * 1024, args.concurrency)
        payload_bytes = load.setup()
        tokens = dict(zip(names, real.create_tokens_quickly(names), strict=True))
        joined = load.join(tokens)
        if joined["200"] != len(names):
            logger.error("not every cluster joined: %s", dict(joined))
            return 1
        ours, theirs, base = (
            Measured("cluster-manager"),
            Measured("nginx"),
            Measured("baseline (no-op, Python TLS)"),
        )
        others = [Measured(f"cluster-manager from {path}") for path in args.before]
        measured = [ours, *others, theirs, base]
        quick = Measured("baseline (no-op, Python TLS on uvloop)")
        if fast is not None:
            measured.append(quick)
        other_tokens = {name: nginx.token_for(name) for name in names}
        base_tokens = {name: baseline.token_for(name) for name in names}
        for round_ in range(args.rounds):
            logger.info("round %d: cluster-manager", round_ + 1)
            profile = args.profile if round_ == 0 else None
            profiler = Profiler(real.pid, profile, args.duration) if profile else None
            ours.rows.append(
                measure(
                    ours.name, load, tokens, real, args, real.database_cpu_seconds,
                    at_start=profiler.start if profiler else None,
                )
            )  # fmt: skip
            if profiler is not None:
                print(profiler.summary())
            for before, other in zip(befores, others, strict=True):
                stop_process(real.process, 15)
                before.start()
                logger.info("round %d: %s", round_ + 1, other.name)
                other.rows.append(
                    measure(other.name, load, tokens, before, args, real.database_cpu_seconds)
                )
                before.stop()
                real._spawn(  # the bench's own helper: the same configuration again
                    [sys.executable, "-m", "cluster_manager.cli", "--config", str(real.config),
                     "serve"]
                )  # fmt: skip
            logger.info("round %d: nginx", round_ + 1)
            theirs.rows.append(measure(theirs.name, load, other_tokens, nginx, args))
            logger.info("round %d: baseline", round_ + 1)
            base.rows.append(measure(base.name, load, base_tokens, baseline, args))
            if fast is not None:
                logger.info("round %d: baseline on uvloop", round_ + 1)
                fast_tokens = {name: fast.token_for(name) for name in names}
                quick.rows.append(measure(quick.name, load, fast_tokens, fast, args))
        report = render(
            measured,
            theirs,
            {
                "clusters": args.clusters,
                "seconds per window": args.duration,
                "rounds": args.rounds,
                "niceness": args.nice,
                "load processes": args.processes,
                "in flight per process": args.concurrency,
                "mean heartbeat body": f"{payload_bytes / 1024:.0f} KiB",
            },
        )
        print(report)
        Path(args.output).write_text(report)
        return 0
    finally:
        if load is not None:
            load.close()
        nginx.stop()
        if fast is not None:
            fast.stop()
        baseline.stop()
        for before in befores:
            before.stop()
        real.stop()
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
