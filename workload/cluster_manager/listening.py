"""Listening sockets that share one process's file descriptors fairly, and survive running out.

Every server of the process (Management, Connector, ops) accepts from one of these:

- **A cap per server.** Each server may hold at most its share of the open-files limit; a
  connection beyond it is closed as soon as it is accepted, before any TLS handshake. A flood
  of idle connections on the Management port therefore cannot take the descriptors the
  Connector needs for heartbeats.
- **Running out of descriptors** (EMFILE, ENFILE, ...): asyncio then stops accepting on the
  socket for a second and tries again, which is right, but it logs a traceback for every attempt
  (up to the backlog's length each time, 186 MB in 100 s once). Here the first failure of a burst
  pauses the socket and later attempts in the same burst end quietly; `quiet_accept_errors`
  keeps asyncio's handler from logging them, and one warning line says so every
  ``REPORT_INTERVAL`` seconds. Accepting resumes by itself once descriptors are free again.
- `raise_open_files_limit` lifts the soft limit to the hard one at start.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
REPORT_INTERVAL = 10.0  # seconds between two warnings about refused connections
PRUNE_AT_CAP = 0.05  # seconds between two scans for closed connections while at the cap
MAX_LIMIT = 1 << 20  # what "unlimited" open files count as when sharing them out


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard limit; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = MAX_LIMIT
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as error:
            logger.warning("cannot raise the open files limit from %d: %s", soft, error)
            return soft
        logger.info("open files limit raised from %d to %d", soft, hard)
        return hard
    return MAX_LIMIT if soft == resource.RLIM_INFINITY else soft


def share(limit: int, fraction: float, floor: int) -> int:
    """A server's connection cap: its fraction of the open-files limit, at least ``floor``."""
    return max(floor, int(min(limit, MAX_LIMIT) * fraction))


class _Reporter:
    """Count refusals of one kind and log them at most every REPORT_INTERVAL seconds."""

    def __init__(self, message: str) -> None:
        self._message = message
        self._count = 0
        self._next = 0.0

    def __call__(self, *args: object) -> None:
        self._count += 1
        now = time.monotonic()
        if now >= self._next:
            logger.warning(self._message, *args, self._count)
            self._count = 0
            self._next = now + REPORT_INTERVAL


_out_of_descriptors = _Reporter(
    "%s: out of file descriptors (%s), new connections wait in the backlog; %d refused"
    " accepts since the last report"
)


class ListeningSocket(socket.socket):
    """A listening socket whose accept() applies the cap and handles descriptor exhaustion."""

    def configure(self, name: str, max_connections: int) -> None:
        """Name the server (for the log) and set its cap."""
        self.server_name = name
        self.max_connections = max_connections
        self._live: list[socket.socket] = []
        self._next_prune = min(max_connections, 256)
        self._paused_until = 0.0
        self._prune_after = 0.0
        self._over_cap = _Reporter(
            "%s: at its cap of %d open connections; %d new connections closed since the last"
            " report"
        )

    def open_connections(self, at_most: int) -> int | None:
        """Connections accepted here and not closed yet (whatever stage they are at).

        None when more than ``at_most`` may be open: counting walks them all, and a caller on
        a hot path must not pay for every idle connection (or every tunnel) of a busy server.
        """
        if len(self._live) > at_most:  # an upper bound: closed ones leave at the next pruning
            return None
        self._live = [s for s in self._live if s.fileno() != -1]
        return len(self._live)

    def accept(self) -> tuple[socket.socket, Any]:
        """Accept one connection, or close it at once when the server is at its cap."""
        try:
            connection, address = super().accept()
        except OSError as error:
            if error.errno not in EXHAUSTED:
                raise
            now = time.monotonic()
            if now < self._paused_until:
                # asyncio retries once per backlog slot; one report per burst is enough.
                raise BlockingIOError from None
            self._paused_until = now + 0.5
            _out_of_descriptors(self.server_name, errno.errorcode.get(error.errno, error.errno))
            raise
        now = time.monotonic()
        if len(self._live) >= self._next_prune and now >= self._prune_after:
            # Amortised: the list doubles between prunings; at the cap, at most one pruning
            # every PRUNE_AT_CAP seconds, so a flood cannot make every accept a full scan.
            self._live = [s for s in self._live if s.fileno() != -1]
            self._next_prune = min(self.max_connections, max(256, 2 * len(self._live)))
            at_cap = len(self._live) >= self.max_connections
            self._prune_after = now + PRUNE_AT_CAP if at_cap else 0.0
        if len(self._live) >= self.max_connections:
            connection.close()
            self._over_cap(self.server_name, self.max_connections)
            raise ConnectionAbortedError  # asyncio: nothing more to accept in this round
        self._live.append(connection)
        return connection, address


def listening_socket(
    host: str | None, port: int, backlog: int, name: str, cap: int, *, reuse_port: bool = False
) -> ListeningSocket:
    """Bind and listen on the first address ``host`` resolves to (as a server would).

    ``reuse_port`` lets the other worker processes of this unit bind the same port
    (``SO_REUSEPORT``: the kernel spreads new connections over them).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = ListeningSocket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # several worker processes of this unit accept from the same port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    sock.configure(name, cap)
    return sock


ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> ExceptionHandler | None:
    """Keep asyncio from logging a traceback per refused accept; return the previous handler.

    ListeningSocket already reported the exhaustion (once in a while, on one line).
    """
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if (
            isinstance(error, OSError)
            and error.errno in EXHAUSTED
            and str(context.get("message", "")).startswith("socket.accept()")
        ):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return previous
