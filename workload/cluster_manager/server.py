"""Run the servers: management and connector over TLS, ops over plain HTTP, in one process."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from aiohttp import web

from cluster_manager import connection_age, db, logs, mtls, ops, tunnel
from cluster_manager.connector.app import create_app as create_connector_app
from cluster_manager.management.app import create_app as create_management_app
from cluster_manager.settings import Settings, SettingsError
from cluster_manager.tunnel import channel

logger = logging.getLogger(__name__)


class BoundedTLSSite(web.TCPSite):
    """A TLS site whose handshakes time out and whose connections live a bounded time.

    aiohttp has no timeout for reading request headers; capping every connection's age (the
    MicroCloud client opens a new connection per request) stops slow or idle clients from
    holding sockets.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        handshake_timeout: float,
        max_age: float | None,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self._handshake_timeout = handshake_timeout
        self._max_age = max_age

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

        self._server = await loop.create_server(
            protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout,
            backlog=self._backlog,
            reuse_address=True,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]


def _abort(handler: web.RequestHandler) -> None:
    transport = handler.transport
    if (
        transport is not None
        and not transport.is_closing()
        and not connection_age.exempt(transport)
    ):
        transport.abort()


class Servers:
    """The three servers of one process; ports are known after start()."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runners: list[web.AppRunner] = []
        self.management_port = 0
        self.connector_port = 0
        self.ops_port = 0
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
        hub = tunnel.TunnelHub(settings)  # this unit's tunnels, shared by both apps
        management_app = create_management_app(settings)
        management_app[tunnel.TUNNEL_HUB] = hub
        management = await self._runner(management_app, access_log=True)
        site = BoundedTLSSite(
            management,
            settings.management_host,
            settings.management_port,
            ssl_context=management_tls,
            handshake_timeout=settings.tls_handshake_timeout,
            max_age=None,
        )
        await site.start()
        self.management_port = site.port
        connector_app = create_connector_app(settings)
        connector_app[tunnel.TUNNEL_HUB] = hub
        connector = await self._runner(connector_app, access_log=False, keepalive_timeout=5)
        site = BoundedTLSSite(
            connector,
            settings.connector_host,
            settings.connector_port,
            ssl_context=connector_tls,
            handshake_timeout=settings.tls_handshake_timeout,
            max_age=settings.connection_max_age,
        )
        await site.start()
        self.connector_port = site.port
        ops_runner = await self._runner(ops.create_app(settings), access_log=False)
        ops_site = web.TCPSite(
            ops_runner, settings.ops_host, settings.ops_port, reuse_address=True
        )
        await ops_site.start()
        self.ops_port = ops_site.port
        self.internal_port = await self._start_internal(hub)
        logger.info(
            "serving management on %s, connector on %s, ops on %s",
            self.management_port,
            self.connector_port,
            self.ops_port,
        )

    async def _start_internal(self, hub: tunnel.TunnelHub) -> int:
        """The unit-to-unit channel (reverse tunnels), when a shared key is configured."""
        key = channel.load_key(self.settings)
        if key is None:
            return 0
        runner = await self._runner(channel.create_app(self.settings, hub, key), access_log=False)
        site = web.TCPSite(
            runner, self.settings.internal_host, self.settings.internal_port, reuse_address=True
        )
        await site.start()
        return site.port

    async def _runner(self, app: web.Application, **kwargs: object) -> web.AppRunner:
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


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets (in the running event loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT or SIGTERM."""
    servers = Servers(settings)
    stop = stop_on_signals()
    try:
        await servers.start()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await servers.stop()
