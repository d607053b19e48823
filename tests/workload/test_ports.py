"""Ports handed to the servers the tests, benchmarks and demo start (cluster_manager.ports).

CI once failed when a port from the kernel's ephemeral range was taken between the check
and the server's bind, and when a stale server still held a number handed out again.
"""

from __future__ import annotations

import itertools
import socket

from cluster_manager import ports


def test_ports_are_never_handed_out_twice_and_stay_below_the_ephemeral_range():
    low, _ = (int(part) for part in ports.EPHEMERAL_RANGE.read_text().split())

    handed = [ports.unused_port() for _ in range(200)]

    assert len(set(handed)) == len(handed)
    assert all(ports.LOWEST <= port < low for port in handed)


def test_a_port_something_holds_is_skipped(monkeypatch):
    taken = ports.unused_port()
    with socket.socket() as holder:  # a server still listening there, as a stale one would
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        # Point the allocator back at the held port.
        monkeypatch.setattr(ports, "_next", itertools.count(ports._SPAN.index(taken)))

        assert ports.unused_port() == taken + 1


def test_a_block_of_consecutive_ports_is_free_as_a_whole():
    first = ports.unused_ports(3)

    for port in range(first, first + 3):
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - checking the block is free
    assert ports.unused_port() not in range(first, first + 3)
