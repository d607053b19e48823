"""Run the servers: management and connector over TLS, ops over plain HTTP, in one process.

A unit may run several such processes (:mod:`cluster_manager.workers`): they share the
Management and Connector ports (``SO_REUSEPORT``, when ``settings.workers`` is above 1).

Connection limits (see the README's "Security" section): every connection must finish its
first request's headers within the keep-alive time (after its TLS handshake, itself bounded),
lives at most a bounded age, and each server holds at most its share of the process's file
descriptors (:mod:`cluster_manager.listening`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import MutableSequence

from aiohttp import web

from cluster_manager import connection_age, db, listening, logs, mtls, ops, tunnel
from cluster_manager.connector.app import create_app as create_connector_app
from cluster_manager.heartbeat_writer import WRITER
from cluster_manager.management.app import create_app as create_management_app
from cluster_manager.notifications import NOTIFICATIONS, Notifications
from cluster_manager.security_headers import add_security_headers
from cluster_manager.settings import Settings, SettingsError
from cluster_manager.tunnel import channel

logger = logging.getLogger(__name__)

# Idle (or half-sent) connections are closed after this many seconds without a whole request.
MANAGEMENT_KEEPALIVE = 10.0  # browsers reopen at once; 10 s keeps a page's bursts on one socket
OPS_KEEPALIVE = 5.0  # probes and Prometheus, once every few seconds at most
CONNECTOR_KEEPALIVE = 5.0  # the MicroCloud client opens a new connection per request
INTERNAL_KEEPALIVE = 15.0  # other units reuse their connections to this unit
# A connection older than this is cut: no request of these servers takes nearly as long, and
# the 10 s idle limit closes a browser's connection between two refreshes of a page.
MANAGEMENT_MAX_AGE = 120.0
OPS_MAX_AGE = 120.0
# Each server's share of the open-files limit (the rest: database pools, files, listeners).
CONNECTOR_SHARE, MANAGEMENT_SHARE, OPS_SHARE, INTERNAL_SHARE = 0.4, 0.2, 0.05, 0.05


class BoundedTLSSite(web.TCPSite):
    """A site whose handshakes time out, whose connections live a bounded time, and are capped.

    aiohttp has no timeout for reading a request's body; capping every connection's age (the
    MicroCloud client opens a new connection per request) stops slow or idle clients from
    holding sockets. ``ssl_context`` None serves plain HTTP. ``max_connections`` caps the
    connections open at once (see :mod:`cluster_manager.listening`).
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
        max_age: float | None,
        max_connections: int = listening.MAX_LIMIT,
        name: str = "server",
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self._shared_port = reuse_port
        self._handshake_timeout = handshake_timeout
        self._max_age = max_age
        self._max_connections = max_connections
        self._name = name
        self.listening_socket: listening.ListeningSocket | None = None  # once started

    async def start(self) -> None:
        """Listen, wrapping the protocol factory with the connection deadline."""
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        factory = self._runner.server
        assert factory is not None
        max_age = self._max_age

        def protocol():
            handler = factory()
            if max_age:
                loop.call_later(max_age, _abort, handler)
            return handler

        sock = listening.listening_socket(
            self._host,
            self._port,
            self._backlog,
            self._name,
            self._max_connections,
            reuse_port=self._shared_port,
        )
        self.listening_socket = sock
        self._server = await loop.create_server(
            protocol,
            sock=sock,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
            backlog=self._backlog,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]


# Up to this many open connector connections (tunnels included) a burst may go early; beyond,
# the linger alone decides: counting would cost every heartbeat a walk over them all.
EARLY_BURST_CONNECTIONS = 256


def _expected_heartbeats(
    connections: listening.ListeningSocket, hub: tunnel.TunnelHub
) -> int | None:
    """Heartbeats that could still join a burst: the connector's open connections, tunnels aside.

    None when too many are open to count cheaply (see :data:`EARLY_BURST_CONNECTIONS`).
    """
    open_now = connections.open_connections(EARLY_BURST_CONNECTIONS)
    return None if open_now is None else open_now - hub.open_count()


def _abort(handler: web.RequestHandler) -> None:
    transport = handler.transport
    if (
        transport is not None
        and not transport.is_closing()
        and not connection_age.exempt(transport)
    ):
        transport.abort()


class Servers:
    """The three servers of one process; ports are known after start().

    ``worker`` is this process's index among the unit's workers (:mod:`.workers`), and
    ``ops_ports`` the workers' ops ports, shared by them all (this one's written at start).
    """

    def __init__(
        self, settings: Settings, worker: int = 0, ops_ports: MutableSequence[int] | None = None
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.ops_ports = ops_ports
        self.runners: list[web.AppRunner] = []
        self.management_port = 0
        self.connector_port = 0
        self.ops_port = 0
        self._previous_exception_handler: listening.ExceptionHandler | None = None
        self._handler_installed = False
        self.internal_port = 0

    async def start(self) -> None:
        """Migrate the database, then start listening."""
        settings = self.settings
        for name in (
            "management_cert_file",
            "management_key_file",
            "connector_cert_file",
            "connector_key_file",
            "database_dsn",
        ):
            if not getattr(settings, name):
                raise SettingsError(f"{name} is not set")
        await db.migrate(settings.database_dsn)
        management_tls = mtls.server_context(
            settings.management_cert_file, settings.management_key_file, request_client_cert=False
        )
        connector_tls = mtls.server_context(
            settings.connector_cert_file, settings.connector_key_file, request_client_cert=True
        )
        limit = listening.raise_open_files_limit()
        self._previous_exception_handler = listening.quiet_accept_errors(
            asyncio.get_running_loop()
        )
        self._handler_installed = True
        hub = tunnel.TunnelHub(settings)  # this unit's tunnels, shared by both apps
        listener = Notifications(settings.database_dsn)  # the process's one LISTEN connection
        management_app = create_management_app(settings)
        management_app[tunnel.TUNNEL_HUB] = hub
        management_app[NOTIFICATIONS] = listener
        management = await self._runner(
            management_app,
            tls=True,
            access_log=True,
            keepalive_timeout=MANAGEMENT_KEEPALIVE,
        )
        site = BoundedTLSSite(
            management,
            settings.management_host,
            settings.management_port,
            ssl_context=management_tls,
            handshake_timeout=settings.tls_handshake_timeout,
            max_age=MANAGEMENT_MAX_AGE,
            max_connections=listening.share(limit, MANAGEMENT_SHARE, 16),
            name="management",
            reuse_port=settings.workers > 1,
        )
        await site.start()
        self.management_port = site.port
        connector_app = create_connector_app(settings)
        connector_app[tunnel.TUNNEL_HUB] = hub
        connector_app[NOTIFICATIONS] = listener
        connector = await self._runner(
            connector_app,
            tls=True,
            access_log=False,
            keepalive_timeout=CONNECTOR_KEEPALIVE,
        )
        site = BoundedTLSSite(
            connector,
            settings.connector_host,
            settings.connector_port,
            ssl_context=connector_tls,
            handshake_timeout=settings.tls_handshake_timeout,
            max_age=settings.connection_max_age,
            max_connections=listening.share(limit, CONNECTOR_SHARE, 32),
            name="connector",
            reuse_port=settings.workers > 1,
        )
        await site.start()
        self.connector_port = site.port
        connections = site.listening_socket
        assert connections is not None
        connector_app[WRITER].expected = lambda: _expected_heartbeats(connections, hub)
        ops_runner = await self._runner(
            ops.create_app(settings, self.worker, self.ops_ports),
            tls=False,
            access_log=False,
            keepalive_timeout=OPS_KEEPALIVE,
        )
        ops_site = BoundedTLSSite(
            ops_runner,
            settings.ops_host,
            settings.ops_port,
            ssl_context=None,
            handshake_timeout=settings.tls_handshake_timeout,
            max_age=OPS_MAX_AGE,
            max_connections=listening.share(limit, OPS_SHARE, 8),
            name="ops",
        )
        await ops_site.start()
        self.ops_port = ops_site.port
        self.internal_port = await self._start_internal(hub, limit)
        if self.ops_ports is not None:  # worker 0 now reads this one's metrics: it is serving
            self.ops_ports[self.worker] = self.ops_port
        logger.info(
            "serving management on %s, connector on %s, ops on %s",
            self.management_port,
            self.connector_port,
            self.ops_port,
        )

    async def _start_internal(self, hub: tunnel.TunnelHub, limit: int) -> int:
        """The unit-to-unit channel (reverse tunnels), when a shared key is configured."""
        key = channel.load_key(self.settings)
        if key is None:
            return 0
        runner = await self._runner(
            channel.create_app(self.settings, hub, key),
            access_log=False,
            keepalive_timeout=INTERNAL_KEEPALIVE,
        )
        # Requests wait in a cluster's queue, so no age cap; the caps on idle time and on
        # connections still hold.
        site = BoundedTLSSite(
            runner,
            self.settings.internal_host,
            self.settings.internal_port,
            ssl_context=None,
            handshake_timeout=self.settings.tls_handshake_timeout,
            max_age=None,
            max_connections=listening.share(limit, INTERNAL_SHARE, 16),
            name="internal",
        )
        await site.start()
        return site.port

    async def _runner(
        self, app: web.Application, *, tls: bool = False, **kwargs: object
    ) -> web.AppRunner:
        """Set up a runner; every answer gets the security headers (HSTS only with ``tls``)."""
        add_security_headers(app, tls=tls)
        kwargs.setdefault("handle_signals", False)
        kwargs.setdefault("shutdown_timeout", 5)
        if kwargs.pop("access_log", True):
            kwargs["access_log_class"] = logs.AccessLogger
        else:
            kwargs["access_log"] = None
        runner = web.AppRunner(app, **kwargs)  # type: ignore[arg-type]
        await runner.setup()
        self.runners.append(runner)
        return runner

    async def stop(self) -> None:
        """Stop every server and close their pools."""
        for runner in reversed(self.runners):
            await runner.cleanup()
        self.runners.clear()
        if self._handler_installed:
            asyncio.get_running_loop().set_exception_handler(self._previous_exception_handler)
            self._handler_installed = False


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets (in the running event loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def serve(
    settings: Settings,
    ready: asyncio.Event | None = None,
    worker: int = 0,
    ops_ports: MutableSequence[int] | None = None,
) -> None:
    """Run until SIGINT or SIGTERM (as worker ``worker`` of the unit; see :class:`Servers`)."""
    servers = Servers(settings, worker, ops_ports)
    stop = stop_on_signals()
    try:
        await servers.start()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await servers.stop()
