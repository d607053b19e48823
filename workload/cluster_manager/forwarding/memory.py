"""What the forwarding worker remembers of each member between heartbeats, bounded.

A member's series are the same minute after minute; only their values change. Per cluster and
member, :class:`Remembered` keeps each line head's encoded series (up to its value) and the
layout of the member's last text; :class:`HeadCache` bounds how much of that a worker keeps.
Each worker process has its own (:func:`head_cache`).
"""

from __future__ import annotations

import dataclasses
import struct
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cluster_manager.forwarding.series import ConversionLimits


# Per entry: the head, the bytes and the dictionary slot (object headers, hash, pointers).
_ENTRY_OVERHEAD = 150


@dataclasses.dataclass(eq=False)
class Remembered:
    """What the worker keeps of a member: its heads, and the layout of its last text.

    When a text has the same heads in the same order as the last one (the usual case), each
    line only loses its head (``lines``), the values left are read together, and the series are
    written with one ``struct`` call (``layout``).
    """

    heads: dict[str, bytes]  # line head -> series prefix (b"" for a comment)
    lines: list[str] | None = None  # the last text's heads, line by line (the dict's keys)
    prefixes: list[bytes] = dataclasses.field(default_factory=list)  # of each of those lines
    samples: list[bytes] = dataclasses.field(default_factory=list)  # of its sample lines
    unique: bool = True  # no series twice among them
    head_chars: int = 0  # of all of ``lines``
    layout: struct.Struct | None = None  # of the encoded series, made at the second sight

    @property
    def size(self) -> int:
        """Approximate bytes held (the layout: 32 bytes per field, three fields a series)."""
        heads = self.heads
        size = sum(map(len, heads)) + sum(map(len, heads.values()))
        return size + _ENTRY_OVERHEAD * len(heads) + (24 + 96) * len(self.lines or ())

    def packing(self, values: list[float], tail: bytes) -> tuple[struct.Struct, list[object]]:
        """The samples' series with ``values`` as one ``struct`` layout and its fields."""
        layout = self.layout
        if layout is None:
            tail_size = len(tail)
            layout = struct.Struct(
                "<" + "".join([f"{len(prefix)}sd{tail_size}s" for prefix in self.samples])
            )
            self.layout = layout
        fields: list[object] = [tail] * (3 * len(values))
        fields[0::3] = self.samples
        fields[1::3] = values
        return layout, fields


class HeadCache:
    """Per (cluster, member): line head -> encoded series up to its value, bounded.

    When full, a member not remembered yet is only taken in place of members idle for
    ``cache_idle_seconds``: with more members than room, evicting the least recently seen on
    every heartbeat would forget each member just before it comes back (no member would ever
    be found), while keeping the ones already in keeps a share of the fleet fast.
    """

    def __init__(self, limits: ConversionLimits) -> None:
        self.limits = limits
        # key -> (what is remembered, approximate bytes, last seen), least recently seen first
        self._members: OrderedDict[tuple[str, str, int], tuple[Remembered, int, float]] = (
            OrderedDict()
        )
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._members)

    def get(self, key: tuple[str, str, int]) -> Remembered | None:
        """What was remembered for a member."""
        entry = self._members.get(key)
        return entry[0] if entry is not None else None

    def put(
        self, key: tuple[str, str, int], remembered: Remembered, now: float | None = None
    ) -> None:
        """Remember a member (replacing what was) if there is room."""
        now = time.monotonic() if now is None else now
        old = self._members.pop(key, None)
        if old is not None and old[0] is remembered:  # unchanged: only seen again
            self._members[key] = (remembered, old[1], now)
            return
        if old is not None:
            self.bytes -= old[1]
        if not remembered.heads:
            return
        size = remembered.size
        idle_before = now - self.limits.cache_idle_seconds
        while self.bytes + size > self.limits.cache_bytes and self._members:
            _, (_, dropped, seen) = next(iter(self._members.items()))
            if seen > idle_before:
                return  # full of members in use: this one is read in full each time
            self._members.popitem(last=False)
            self.bytes -= dropped
        if self.bytes + size <= self.limits.cache_bytes:
            self._members[key] = (remembered, size, now)
            self.bytes += size


_cache: HeadCache | None = None


def head_cache(limits: ConversionLimits) -> HeadCache:
    """This process's cache (each worker process has its own)."""
    global _cache  # one per worker process, kept between batches
    if _cache is None or _cache.limits != limits:
        _cache = HeadCache(limits)
    return _cache


def forget() -> None:
    """Empty this process's cache (the benchmark measures the first sight of a cluster)."""
    global _cache  # one per worker process, kept between batches
    _cache = None
