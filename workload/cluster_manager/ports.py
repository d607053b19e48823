"""Unused TCP ports for the servers the demo, the benchmarks and the tests start.

Asking the kernel for port 0 and handing the number on is racy twice over: the number
comes from the ephemeral range, which every outgoing connection (asyncpg, aiohttp, the
simulated clusters) draws from too, and the kernel hands the same number out again as
soon as it is free, so a server started later can meet a stale one still listening with
``SO_REUSEPORT`` and share its connections. Ports here come from below the ephemeral
range, each at most once per process, and only after a bind shows nothing holds them.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from pathlib import Path

LOWEST = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _span() -> range:
    """Ports outside the kernel's ephemeral range (where outgoing connections get theirs)."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        low, high = 32_768, 60_999  # Linux's default
    if low - LOWEST >= 4_000:
        return range(LOWEST, low)
    return range(high + 1, 65_536)


_SPAN = _span()
_lock = threading.Lock()
# Start where this process's id points, so that suites running side by side mostly stay apart.
_next = itertools.count(os.getpid() * 7_919 % len(_SPAN))


def _bindable(port: int) -> bool:
    """Nothing is bound to ``port`` on any IPv4 address (listening, connected or stale)."""
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - a check, closed at once
        except OSError:
            return False
    return True


def unused_ports(count: int = 1) -> int:
    """The first of ``count`` consecutive ports that nothing holds and this process never gave."""
    with _lock:
        for _ in range(len(_SPAN)):
            first = _SPAN[next(_next) % len(_SPAN)]
            if first + count > _SPAN.stop:
                continue
            for _ in range(count - 1):
                next(_next)  # the rest of the block is this caller's too
            if all(_bindable(port) for port in range(first, first + count)):
                return first
    raise OSError("no unused TCP port left below the ephemeral range")


def unused_port() -> int:
    """One port that nothing holds and that this process has not handed out before."""
    return unused_ports(1)
