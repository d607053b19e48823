"""Request bodies read within a limit that counts the bytes after decompression.

The connector's app turns aiohttp's automatic decompression off (``auto_decompress=False``), so
this module sees the bytes as sent (chunked framing already removed) and inflates them itself,
a network chunk at a time, asking zlib for never more than what is left of ``limit + 1`` bytes:
a gzip bomb costs at most the limit in memory and CPU before it is refused with 413.
"""

from __future__ import annotations

import zlib

from aiohttp import web

from cluster_manager.errors import ApiError, BadRequest, PayloadTooLarge

# zlib window bits: gzip framing, zlib framing, and raw deflate (what some clients call deflate).
_GZIP, _ZLIB, _RAW = 31, 15, -15


class UnsupportedEncoding(ApiError):
    """The body's Content-Encoding is not one the connector decodes."""

    status = 415


def _decoder(request: web.Request) -> str:
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return ""
    if encoding in ("gzip", "x-gzip", "deflate"):
        return encoding
    raise UnsupportedEncoding("Content-Encoding must be gzip, deflate or none")


class _Inflater:
    """Inflate incrementally, producing at most ``budget`` bytes in total."""

    def __init__(self, encoding: str, budget: int) -> None:
        self.encoding = encoding
        self.budget = budget
        self._zlib: zlib._Decompress | None = None

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            if self.encoding == "deflate":
                # RFC 1950 framing when the first byte says so, raw deflate otherwise.
                bits = _ZLIB if data[:1] and data[0] & 0x0F == 8 else _RAW
            else:
                bits = _GZIP
            self._zlib = zlib.decompressobj(bits)
        elif self._zlib.eof:
            if data:
                raise BadRequest("Request body cannot be decoded: data after the end")
            return b""
        try:
            out = self._zlib.decompress(data, self.budget)
        except zlib.error:
            raise BadRequest("Request body cannot be decoded") from None
        self.budget -= len(out)
        if self._zlib.eof and self._zlib.unused_data:
            raise BadRequest("Request body cannot be decoded: data after the end")
        return out

    @property
    def held_back(self) -> bool:
        """Whether zlib still holds input it was not allowed to inflate."""
        return self._zlib is not None and bool(self._zlib.unconsumed_tail)

    def finish(self) -> None:
        if self._zlib is not None and not self._zlib.eof:
            raise BadRequest("Request body cannot be decoded: it ends too early")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, decoded, or 413 as soon as it is more than ``limit`` bytes.

    The body is read as it arrives; gzip and deflate are inflated incrementally and never past
    ``limit + 1`` bytes. Other encodings are refused with 415, undecodable bytes with 400.
    """
    too_large = PayloadTooLarge(f"body larger than {limit} bytes")
    encoding = _decoder(request)
    if request.content_length is not None and request.content_length > limit and not encoding:
        raise too_large
    inflater = _Inflater(encoding, limit + 1) if encoding else None
    # Compressed input that inflates to little (gzip header fields, empty deflate blocks) is
    # bounded too: no more than the limit plus what compression can add to incompressible data.
    wire_limit = limit + limit // 100 + 1024
    parts: list[bytes] = []
    size = wire = 0
    async for chunk in request.content.iter_any():
        wire += len(chunk)
        data = inflater.feed(chunk) if inflater else chunk
        size += len(data)
        if size > limit or wire > wire_limit or (inflater is not None and inflater.held_back):
            raise too_large
        parts.append(data)
    if inflater is not None:
        inflater.finish()
    return b"".join(parts)
