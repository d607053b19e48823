"""The forwarding worker process, and the server's end of the socket that feeds it.

The server hands the worker a batch of heartbeats as one buffer: a msgpack encoding of the
submissions (the metrics text is copied once into it, not pickled object by object), written
with its length to a UNIX socket the event loop writes without blocking and without a thread.
The worker reads it in a few calls, converts it (:func:`~cluster_manager.forwarding.series.
build_batch`, with its per-heartbeat budget) and answers the same way with the encoded
request. One batch is in flight at a time, so a worker's memory of what it converts stays one
batch.

The worker ends when the server's end closes (the server stopped or died): it waits on nothing
else. If the worker dies, :meth:`WorkerProcess.convert` raises :class:`WorkerDied` and the server
starts another.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import socket
import struct

import msgspec

from cluster_manager.forwarding.series import Batch, ConversionLimits, Submission, build_batch

_LENGTH = struct.Struct("<Q")
_BUFFER = 4 * 1024 * 1024  # socket buffers: a usual batch in one or two calls
_MAX_MESSAGE = 1 << 40  # a length past this is not one of ours


class _Request(msgspec.Struct, array_like=True):
    submissions: list[Submission]
    limits: ConversionLimits


class _Reply(msgspec.Struct, array_like=True):
    batch: Batch | None
    error: str = ""


_encoder = msgspec.msgpack.Encoder()
_requests = msgspec.msgpack.Decoder(_Request)
_replies = msgspec.msgpack.Decoder(_Reply)


class WorkerDied(Exception):
    """The worker process ended or answered something unreadable."""


class ConversionFailed(Exception):
    """The worker could not convert a batch (it goes on with the next one)."""


def _receive(sock: socket.socket) -> bytearray | None:
    """One length-prefixed message; None at the end of the stream."""
    header = _receive_exactly(sock, _LENGTH.size)
    if header is None:
        return None
    (size,) = _LENGTH.unpack(header)
    if size > _MAX_MESSAGE:
        return None
    return _receive_exactly(sock, size)


def _receive_exactly(sock: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if not count:
            return None
        got += count
    return buffer


def serve(sock: socket.socket) -> None:
    """The worker process: convert batches from ``sock`` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when the worker ends
    sock.setblocking(True)
    with sock:
        while True:
            message = _receive(sock)
            if message is None:
                return
            try:
                request = _requests.decode(message)
                del message
                reply = _Reply(build_batch(request.submissions, request.limits))
            except Exception as error:  # reported to the server, which counts it
                reply = _Reply(None, f"{type(error).__name__}: {error}")
            data = _encoder.encode(reply)
            sock.sendall(_LENGTH.pack(len(data)) + data)


class WorkerProcess:
    """The server's end: start the worker, give it batches, read back encoded requests."""

    def __init__(self) -> None:
        self.process: multiprocessing.process.BaseProcess | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        """Spawn the worker (spawn: forking a process running an event loop is not safe)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for end in (ours, theirs):
            with contextlib.suppress(OSError):
                end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
                end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        process = multiprocessing.get_context("spawn").Process(
            target=serve, args=(theirs,), name="mcm-forwarding-worker"
        )
        try:
            process.start()
        finally:
            theirs.close()
        self.process = process
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours, limit=_BUFFER)

    async def convert(self, submissions: list[Submission], limits: ConversionLimits) -> Batch:
        """Have the worker convert a batch.

        Raises:
            WorkerDied: the worker ended; it is not started again here.
            ConversionFailed: the worker could not convert this batch.
            TypeError, ValueError: a submission cannot be encoded (nothing was sent).
        """
        assert self._reader is not None
        assert self._writer is not None
        data = _encoder.encode(_Request(submissions, limits))
        try:
            self._writer.write(_LENGTH.pack(len(data)))
            self._writer.write(data)
            del data
            await self._writer.drain()
            (size,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
            reply = _replies.decode(await self._reader.readexactly(size))
        except (OSError, EOFError, asyncio.IncompleteReadError, msgspec.DecodeError) as error:
            raise WorkerDied(str(error) or type(error).__name__) from error
        if reply.batch is None:
            raise ConversionFailed(reply.error)
        return reply.batch

    async def stop(self) -> None:
        """Close the worker's socket; it ends; kill it if it does not within 5 s."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
            self._reader = self._writer = None
        process, self.process = self.process, None
        if process is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, process.join, 5)
            if process.is_alive():
                process.kill()
                await loop.run_in_executor(None, process.join, 5)
            process.close()
