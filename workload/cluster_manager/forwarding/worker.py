"""The forwarding worker process, and the server's end of the socket that feeds it.

The server hands the worker a batch of heartbeats as one buffer: a msgpack encoding of the
submissions (the metrics text is copied into it, not pickled object by object), put in memory
both processes map (a memfd, passed over the socket once), and its length written to a UNIX
socket the event loop writes without blocking and without a thread. The worker decodes it
from that memory, converts it (:func:`~cluster_manager.forwarding.series.build_batch`, with its
per-heartbeat budget) and answers on the socket with the encoded request (a tenth of the
size). One batch is in flight at a time: the server writes the shared memory again only once
the worker has answered.

The worker ends when the server's end closes (the server stopped or died): it waits on nothing
else. If the worker dies, :meth:`WorkerProcess.convert` raises :class:`WorkerDied` and the server
starts another.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import multiprocessing
import os
import signal
import socket
import struct
from multiprocessing.process import BaseProcess

import msgspec

from cluster_manager.forwarding.series import Batch, ConversionLimits, Submission, build_batch

_LENGTH = struct.Struct("<Q")
_REQUEST = struct.Struct("<QQ")  # length of the request, size of the shared memory
_BUFFER = 4 * 1024 * 1024  # socket buffers, and the shared memory at first
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


def _convert(shared: mmap.mmap, length: int) -> _Reply:
    try:
        with memoryview(shared) as view, view[:length] as message:
            request = _requests.decode(message)
        return _Reply(build_batch(request.submissions, request.limits))
    except Exception as error:  # reported to the server, which counts it
        return _Reply(None, f"{type(error).__name__}: {error}")


def serve(sock: socket.socket) -> None:
    """The worker process: convert batches from ``sock`` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when the worker ends
    sock.setblocking(True)
    with sock:
        _, fds, _, _ = socket.recv_fds(sock, 1, 1)
        if not fds:
            return
        memory_fd = fds[0]
        shared: mmap.mmap | None = None
        try:
            while True:
                header = _receive_exactly(sock, _REQUEST.size)
                if header is None:
                    return
                length, size = _REQUEST.unpack(header)
                if length > size or size > _MAX_MESSAGE:
                    return
                if shared is None or len(shared) != size:  # the server made it larger
                    if shared is not None:
                        shared.close()
                    shared = mmap.mmap(memory_fd, size)
                data = _encoder.encode(_convert(shared, length))
                sock.sendall(_LENGTH.pack(len(data)) + data)
        finally:
            if shared is not None:
                shared.close()
            os.close(memory_fd)


class WorkerProcess:
    """The server's end: start the worker, give it batches, read back encoded requests."""

    def __init__(self) -> None:
        self.process: BaseProcess | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._memory_fd = -1
        self._shared: mmap.mmap | None = None

    async def start(self) -> None:
        """Spawn the worker (spawn: forking a process running an event loop is not safe)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for end in (ours, theirs):
            with contextlib.suppress(OSError):
                end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
                end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        process = multiprocessing.get_context("spawn").Process(
            target=serve, args=(theirs,), name="mcm-forwarding-worker", daemon=True
        )
        memory_fd = os.memfd_create("mcm-forwarding", os.MFD_CLOEXEC)
        try:
            os.ftruncate(memory_fd, _BUFFER)
            self._shared = mmap.mmap(memory_fd, _BUFFER)
            try:
                process.start()
            finally:
                theirs.close()
            socket.send_fds(ours, [b"m"], [memory_fd])
        except BaseException:
            os.close(memory_fd)
            ours.close()
            raise
        self._memory_fd = memory_fd
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
        assert self._shared is not None
        data = _encoder.encode(_Request(submissions, limits))
        if len(data) > len(self._shared):  # the worker maps it again at this size
            size = max(len(data), 2 * len(self._shared))
            os.ftruncate(self._memory_fd, size)
            self._shared.close()
            self._shared = mmap.mmap(self._memory_fd, size)
        self._shared[: len(data)] = data
        try:
            self._writer.write(_REQUEST.pack(len(data), len(self._shared)))
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
        if self._shared is not None:
            self._shared.close()
            self._shared = None
        if self._memory_fd >= 0:
            os.close(self._memory_fd)
            self._memory_fd = -1
        process, self.process = self.process, None
        if process is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, process.join, 5)
            if process.is_alive():
                process.kill()
                await loop.run_in_executor(None, process.join, 5)
            process.close()
