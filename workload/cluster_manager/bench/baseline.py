"""The benchmark's baseline: the connector's TLS stack with a handler that does no work.

Same server context (a client certificate is asked for and any is accepted, see
:mod:`cluster_manager.mtls`), same listening site (handshake timeout, bounded connection age),
same keep-alive setting as the Cluster Connector. The handler reads the body (decrypting it is
the TLS stack's cost, not the application's) and answers as the connector does: the probe
(``GET /``) with an empty LXD envelope, anything else with an empty 200 that closes the
connection.

Run: ``python -m cluster_manager.bench.baseline --cert C --key K --port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
from collections.abc import Sequence

from aiohttp import web

from cluster_manager import mtls
from cluster_manager.envelope import empty_ok, sync_response
from cluster_manager.server import BoundedTLSSite
from cluster_manager.settings import Settings

MAX_BODY = Settings().max_heartbeat_bytes


async def handle(request: web.Request) -> web.Response:
    """Read the request and answer success, whatever it was."""
    await request.read()
    return sync_response() if request.method == "GET" else empty_ok()


def create_app() -> web.Application:
    """The no-op application."""
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve(cert_file: str, key_file: str, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM."""
    defaults = Settings()
    context = mtls.server_context(cert_file, key_file, request_client_cert=True)
    runner = web.AppRunner(
        create_app(), access_log=None, keepalive_timeout=5, handle_signals=False
    )
    await runner.setup()
    site = BoundedTLSSite(
        runner,
        host,
        port,
        ssl_context=context,
        handshake_timeout=defaults.tls_handshake_timeout,
        max_age=defaults.connection_max_age,
    )
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop (when installed), for comparison"
    )
    args = parser.parse_args(argv)
    if args.uvloop:
        importlib.import_module("uvloop").install()  # optional: only this comparison needs it
    asyncio.run(serve(args.cert, args.key, args.host, args.port))


if __name__ == "__main__":
    main()
