"""One PostgreSQL LISTEN connection per server process, shared by everything that listens.

The identity cache, the revocation list and the tunnel hub each keep in-memory state that
NOTIFY keeps current. They :meth:`Notifications.subscribe` to a channel with a callback for each
payload, a ``resync`` coroutine and a ``lost`` function. One task owns the connection (asyncpg
allows one operation at a time on it):

- it connects (bounded), LISTENs on every subscribed channel, then awaits each subscriber's
  ``resync(connection)``: notifications sent while nobody listened are gone, so a subscriber
  reloads what it keeps from the tables (on this same connection, after LISTEN, so nothing
  falls between the two);
- it checks the connection now and then (``SELECT 1``, bounded) and reacts at once to its loss
  (asyncpg's termination listener): every subscriber's ``lost()`` is called, so it stops
  trusting its state, and it reconnects with exponential backoff (with jitter) until it is back;
- a subscription made while connected is LISTENed and resynchronised by the same task.

A process holds exactly one such connection however many apps share it (``db.pool_sizes``
counts it). Callbacks run in the event loop and must not block; an exception in one is logged
and does not stop the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
from aiohttp import web

logger = logging.getLogger(__name__)

APPLICATION_NAME = "cluster-manager listener"  # pg_stat_activity tells this connection apart
CONNECT_TIMEOUT = 10
STATEMENT_TIMEOUT = 10.0  # LISTEN, the alive check and each subscriber's resync
ALIVE_INTERVAL = 15.0
FIRST_DELAY, MAX_DELAY = 0.5, 30.0  # reconnect backoff, doubling

Callback = Callable[[str], None]
Resync = Callable[[asyncpg.Connection], Awaitable[None]]
_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


@dataclasses.dataclass(eq=False)
class Subscription:
    """One subscriber's channel, callback, and what it does on (re)connection and on loss."""

    channel: str
    callback: Callback
    resync: Resync | None = None
    lost: Callable[[], None] | None = None


class Notifications:
    """The process's LISTEN connection and its subscribers."""

    def __init__(
        self,
        dsn: str,
        *,
        alive_interval: float = ALIVE_INTERVAL,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self.dsn = dsn
        self.alive_interval = alive_interval
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.connected = asyncio.Event()  # set once LISTENing and every subscriber resynced
        self.connections = 0  # connections made so far (1 + reconnections)
        self._subscriptions: list[Subscription] = []
        self._pending: list[Subscription] = []  # subscribed while connected, not yet LISTENed
        self._wake = asyncio.Event()
        self._listened: set[str] = set()
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._users = 0

    def subscribe(
        self,
        channel: str,
        callback: Callback,
        *,
        resync: Resync | None = None,
        lost: Callable[[], None] | None = None,
    ) -> Subscription:
        """Call ``callback(payload)`` for each notification on ``channel``.

        ``resync(connection)`` is awaited after each (re)connection, LISTEN already in place;
        ``lost()`` is called when the connection is lost (notifications may be missed from then).
        """
        subscription = Subscription(channel, callback, resync, lost)
        self._subscriptions.append(subscription)
        if self._connection is not None:
            self._pending.append(subscription)
            self._wake.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop calling a subscription (its channel stays LISTENed until reconnection)."""
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)
        with contextlib.suppress(ValueError):
            self._pending.remove(subscription)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Notifications]:
        """Hold the connection while any app uses it (the first starts it, the last stops it)."""
        self._users += 1
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notifications")
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0 and self._task is not None:
                task, self._task = self._task, None
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _dispatch(self, _connection: object, _pid: int, channel: str, payload: str) -> None:
        for subscription in list(self._subscriptions):
            if subscription.channel == channel:
                try:
                    subscription.callback(payload)
                except Exception:  # one subscriber's bug must not silence the others
                    logger.exception("notification handler for %s failed", channel)

    async def _listen(self, connection: asyncpg.Connection, channel: str) -> None:
        if channel not in self._listened:
            async with asyncio.timeout(STATEMENT_TIMEOUT):
                await connection.add_listener(channel, self._dispatch)
            self._listened.add(channel)

    async def _resync(self, connection: asyncpg.Connection, subscription: Subscription) -> None:
        if subscription.resync is not None:
            async with asyncio.timeout(STATEMENT_TIMEOUT):
                await subscription.resync(connection)

    def _lose(self) -> None:
        self.connected.clear()
        for subscription in list(self._subscriptions):
            if subscription.lost is not None:
                try:
                    subscription.lost()
                except Exception:
                    logger.exception(
                        "notification loss handler for %s failed", subscription.channel
                    )

    async def _run(self) -> None:
        delay = self.first_delay
        while True:
            lost = asyncio.Event()
            connection = None
            try:
                connection = await asyncpg.connect(
                    self.dsn,
                    timeout=CONNECT_TIMEOUT,
                    command_timeout=STATEMENT_TIMEOUT,
                    server_settings={"application_name": APPLICATION_NAME},
                )
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                self._listened = set()
                self._pending = []
                self._connection = connection
                subscriptions = list(self._subscriptions)
                for subscription in subscriptions:
                    await self._listen(connection, subscription.channel)
                for subscription in subscriptions:
                    await self._resync(connection, subscription)
                self.connections += 1
                self.connected.set()
                delay = self.first_delay
                logger.info("listening for notifications on %d channels", len(self._listened))
                await self._serve(connection, lost)
            except _ERRORS:
                logger.warning("notification listener cannot reach the database")
            except Exception:  # a subscriber's bug: start again rather than stop listening
                logger.exception("notification listener failed")
            finally:
                self._connection = None
                self._lose()
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter)
            delay = min(self.max_delay, delay * 2)

    async def _serve(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Until the connection is lost: take new subscriptions, check it is alive."""
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while not lost.is_set():
            self._wake.clear()
            while self._pending:
                subscription = self._pending.pop(0)
                await self._listen(connection, subscription.channel)
                await self._resync(connection, subscription)
            wait = max(0.0, checked + self.alive_interval - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await _first(lost.wait(), self._wake.wait())
            if lost.is_set():
                return
            if loop.time() - checked >= self.alive_interval:
                await connection.fetchval("SELECT 1", timeout=STATEMENT_TIMEOUT)
                checked = loop.time()


async def _first(*awaitables: Awaitable[object]) -> None:
    """Wait until the first of ``awaitables`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


NOTIFICATIONS = web.AppKey("notifications", Notifications)


def notifications_context(dsn: str):
    """cleanup_ctx: the process's listener (given by the server, else the app's own).

    Runs before the contexts that subscribe; apps sharing one listener share its connection.
    """

    async def run(app: web.Application) -> AsyncIterator[None]:
        if NOTIFICATIONS not in app:
            app[NOTIFICATIONS] = Notifications(dsn)
        async with app[NOTIFICATIONS].running():
            yield

    return run
