"""What a heartbeat becomes in Prometheus: cluster-level series and the members' LXD metrics.

:func:`build_batch` runs in a worker process (see :mod:`cluster_manager.forwarding.sender`):
parsing and encoding hundreds of KiB of metrics text per heartbeat is CPU work the connector's
event loop must not do.

A member's series are the same minute after minute; only their values change. The worker
remembers, per cluster and member, each line's head (the text before the value) with the
encoded bytes of its series, and the order of its lines
(:mod:`cluster_manager.forwarding.memory`). A text whose lines have the same heads in the same
order costs a few passes in C over all its lines (heads removed, values read as one JSON array,
series packed with one ``struct`` call); a text with known heads in another order costs a
dictionary look-up per line; only new lines are parsed and encoded. The memory is bounded per
member and in total (least recently seen members are forgotten first), and what a member did
not send in its last heartbeat is forgotten.

Each heartbeat has a budget (:class:`ConversionLimits`): at most so many characters of metrics
text and so much CPU time. Past it, the rest of its members' metrics is not forwarded and the
heartbeat is counted as cut, so one cluster sending garbage cannot hold up the others.

Cluster-level series, each labelled ``cluster``:

- ``mcm_cluster_instances{status}``, ``mcm_cluster_members{status}`` (the usual statuses are sent
  as 0 when absent, so a status that ends does not linger), ``mcm_cluster_ceph_members{status}``
- ``mcm_cluster_cpu_count``, ``mcm_cluster_load1``, ``mcm_cluster_load5``, ``mcm_cluster_load15``
  (sums over members: shipped clients send ``cpu_total_count`` 0)
- ``mcm_cluster_memory_total_bytes``, ``mcm_cluster_memory_used_bytes``
- ``mcm_cluster_storage_pool_total_bytes{pool, member}``,
  ``mcm_cluster_storage_pool_used_bytes{pool, member}`` (no ``member`` for a shared pool)

Each member's LXD metrics keep their names and labels and gain ``cluster`` and ``member``; a
label of the member's own called ``cluster`` or ``member`` is kept as ``exported_cluster`` or
``exported_member`` (Prometheus's convention for clashing labels).
"""

from __future__ import annotations

import dataclasses
import gc
import struct
import time
from itertools import compress, repeat
from operator import itemgetter
from typing import cast

import msgspec

from cluster_manager.forwarding import remote_write
from cluster_manager.forwarding.exposition import BadLine, Labels, read_line, value_of
from cluster_manager.forwarding.memory import Remembered, head_cache
from cluster_manager.heartbeats import Heartbeat

INSTANCE_STATUSES = ("Running", "Stopped", "Frozen", "Error")
MEMBER_STATUSES = ("Online", "Offline", "Evacuated")
ADDED_LABELS = ("cluster", "member")
MIB = 1024 * 1024
_VALUE_START = frozenset("0123456789+-.")
_FIRST, _LAST = itemgetter(0), itemgetter(2)
# Known lines' values, all at once: joined with commas they are a JSON array when each is a JSON
# number, a subset of what Prometheus (and float()) reads as the same double (the tests compare
# every bit); anything else (NaN, +Inf, .5, a blank, too many commas) fails or miscounts, and
# the line by line reader decides.
_VALUES = msgspec.json.Decoder(list[float])


def _values(joined: str, count: int, *, spaced: bool) -> list[float] | None:
    """The values of ``count`` value texts joined by commas; None if one needs a closer look.

    ``spaced``: each text is what follows a known head, so it must be one space and the value
    (a line with no blank before its value, or two, or a timestamp, is read line by line).
    """
    if spaced:
        if count and (
            joined[0] != " " or joined.count(", ") != count - 1 or joined.count(" ") != count
        ):
            return None
        negative_zero = " -0," in f"{joined},"
    else:
        negative_zero = ",-0," in f",{joined},"
    # JSON takes tabs and returns between numbers, and reads "-0" as the integer 0.
    if negative_zero or "\t" in joined or "\r" in joined:
        return None
    try:
        values = _VALUES.decode(f"[{joined}]")
    except msgspec.DecodeError:  # ValidationError included
        return None
    return values if len(values) == count else None  # else a text had a comma in it


_CHECK_EVERY = 256  # lines between looks at the clock


@dataclasses.dataclass(frozen=True)
class ConversionLimits:
    """What one heartbeat may cost the worker, and what the worker remembers."""

    max_metrics_chars: int = 16 * MIB  # members' metrics text per heartbeat
    max_line_chars: int = 64 * 1024  # a longer line is bad (LXD's are under 300)
    cpu_seconds: float = 0.5  # per heartbeat
    cache_heads_per_member: int = 100_000
    cache_bytes: int = 256 * MIB  # all members together, approximately
    cache_idle_seconds: float = 600.0  # a member not seen for so long makes room for others


CONVERSION_LIMITS = ConversionLimits()


@dataclasses.dataclass(frozen=True)
class Submission:
    """An accepted heartbeat waiting to be forwarded."""

    cluster: str
    heartbeat: Heartbeat
    timestamp_ms: int

    @property
    def size(self) -> int:
        """Characters of metrics text: what conversion costs and what the queue holds."""
        return sum(len(m.metrics) for m in self.heartbeat.server_metrics or ()) + 1024


@dataclasses.dataclass(frozen=True)
class Batch:
    """One encoded remote-write request and what went into it."""

    payload: bytes
    heartbeats: int
    series: int
    bad_lines: int
    cpu_seconds: float
    cut: tuple[str, ...] = ()  # clusters whose heartbeat went over its budget


def _encode(labels: Labels) -> bytes:
    try:
        return remote_write.encode_labels(labels)  # label pairs remembered from the last time
    except UnicodeEncodeError:
        return remote_write.encode_labels(labels, errors="replace")


def cluster_series(cluster: str, heartbeat: Heartbeat) -> list[tuple[Labels, float]]:
    """The cluster-level series of a heartbeat (labels sorted, ``__name__`` included)."""
    out: list[tuple[Labels, float]] = []

    def add(name: str, value: float | str, **labels: str) -> None:
        pairs = {"__name__": name, "cluster": cluster}
        pairs.update((key, text) for key, text in labels.items() if text)
        out.append((tuple(sorted(pairs.items())), float(value)))

    for name, entries, usual in (
        ("mcm_cluster_instances", heartbeat.instance_statuses, INSTANCE_STATUSES),
        ("mcm_cluster_members", heartbeat.member_statuses, MEMBER_STATUSES),
        ("mcm_cluster_ceph_members", heartbeat.ceph_statuses, ()),
    ):
        counts: dict[str, int] = dict.fromkeys(usual, 0)
        counts.update((entry.status, entry.count) for entry in entries or ())
        for status, count in counts.items():
            add(name, count, status=status)
    add("mcm_cluster_cpu_count", heartbeat.cpu_total_count)
    add("mcm_cluster_load1", heartbeat.cpu_load_1)
    add("mcm_cluster_load5", heartbeat.cpu_load_5)
    add("mcm_cluster_load15", heartbeat.cpu_load_15)
    add("mcm_cluster_memory_total_bytes", heartbeat.memory_total_amount)
    add("mcm_cluster_memory_used_bytes", heartbeat.memory_usage)
    for pool in heartbeat.storage_pool_usages or ():
        where = {"pool": pool.name, "member": pool.member}
        add("mcm_cluster_storage_pool_total_bytes", pool.total, **where)
        add("mcm_cluster_storage_pool_used_bytes", pool.usage, **where)
    return out


class _OverBudget(Exception):
    pass


@dataclasses.dataclass
class _Member:
    """Converting one member's text: its series (last line wins) and what was wrong."""

    cluster: str
    member: str
    sample_size: int
    limits: ConversionLimits
    deadline: float
    series: dict[bytes, float] = dataclasses.field(default_factory=dict)
    heads: dict[str, bytes] = dataclasses.field(default_factory=dict)
    bad: int = 0
    # The result: series prefixes and their values (last line wins), what to remember.
    samples: list[bytes] = dataclasses.field(default_factory=list)
    values: list[float] = dataclasses.field(default_factory=list)
    remembered: Remembered | None = None
    layout: Remembered | None = None  # when its samples are these in this order, once each

    def encoded(self, tail: bytes) -> bytes | tuple[struct.Struct, list[object]]:
        """The series read, each with one sample of its value and ``tail`` (or their packing)."""
        if self.layout is not None:
            return self.layout.packing(self.values, tail)
        records: list[bytes] = [tail] * (3 * len(self.samples))  # slices in C
        records[0::3] = self.samples
        records[1::3] = map(remote_write.pack_double, self.values)
        return b"".join(records)

    def new_line(self, line: str) -> None:
        """A line whose head is not remembered: check it all, and remember its head."""
        if line[-1] == "\r":
            line = line[:-1]
            if not line:
                return
        if len(line) > self.limits.max_line_chars:
            self.bad += 1
            return
        try:
            read = read_line(line)
            if read is None:
                return
            labels = read.labels
            if any(key in ADDED_LABELS for key, _ in labels):
                labels = tuple(
                    (f"exported_{key}" if key in ADDED_LABELS else key, text)
                    for key, text in labels
                )
            added = (("cluster", self.cluster), ("member", self.member))
            pairs = tuple(sorted((("__name__", read.name), *added[: 2 if self.member else 1],
                                  *labels)))  # fmt: skip
            prefix = remote_write.series_prefix(
                remote_write.encode_labels(pairs), self.sample_size
            )
        except (BadLine, UnicodeEncodeError):
            self.bad += 1
            return
        self.series[prefix] = read.value
        if read.plain and len(self.heads) < self.limits.cache_heads_per_member:
            self.heads[line[: read.head_end]] = prefix

    def convert(self, text: str, remembered: Remembered | None) -> None:
        """Read every line of ``text``; raise :class:`_OverBudget` when time is up."""
        lines = text.split("\n")
        chars = len(text) - len(lines) + 1  # of the lines, without their newlines
        if lines and not lines[-1]:
            lines.pop()  # the text's final newline
        if remembered is not None and self.known_lines(lines, chars, remembered):
            return
        self.each_line(lines, remembered.heads if remembered is not None else {})
        self.samples, self.values = list(self.series), list(self.series.values())
        self.remembered = Remembered(self.heads)

    def known_lines(self, lines: list[str], chars: int, remembered: Remembered) -> bool:
        """Read a text whose every head is remembered, without a Python step per line.

        Returns False, having done nothing, if a head is new or a value needs a closer look
        (the line by line reader then decides). Every step here is linear and done in C.
        """
        known = remembered.lines
        rests = (
            list(map(str.removeprefix, lines, known))
            if known is not None and len(known) == len(lines)
            else None
        )
        # Each line loses its head if it starts with it, else nothing: the lines left are
        # shorter by all the heads exactly when every line starts with its own.
        if rests is not None and len("".join(rests)) == chars - remembered.head_chars:
            # The same lines as last time: each sample's value is what follows its head.
            prefixes, samples = remembered.prefixes, remembered.samples
            unique, keep = remembered.unique, remembered
            values = _values(",".join(compress(rests, prefixes)), len(samples), spaced=True)
        else:
            parts = list(map(str.rpartition, lines, repeat(" ")))
            heads = list(map(_FIRST, parts))
            found = list(map(remembered.heads.get, heads))
            if None in found:
                return False
            prefixes = cast("list[bytes]", found)
            samples = list(compress(prefixes, prefixes))  # comments are remembered as b""
            unique = len(set(samples)) == len(samples)
            # Rebuilt from this text: what the member no longer sends is forgotten, and the
            # dictionary's keys are the very strings of the list.
            keep = Remembered(
                dict(zip(heads, prefixes, strict=True)),
                heads,
                prefixes,
                samples,
                unique,
                head_chars=sum(map(len, heads)),
            )
            texts = list(compress(map(_LAST, parts), prefixes))
            values = _values(",".join(texts), len(texts), spaced=False)
        if values is None:
            return False
        if unique:
            self.samples, self.values = samples, values
            self.layout = keep
        else:
            series = dict(zip(samples, values, strict=True))
            self.samples, self.values = list(series), list(series.values())
        self.remembered = keep
        return True

    def each_line(self, lines: list[str], known: dict[str, bytes]) -> None:
        """Read line by line; remember the heads of valid lines and comments."""
        series, heads = self.series, self.heads
        known_get = known.get
        clock, deadline = time.process_time, self.deadline
        max_heads = self.limits.cache_heads_per_member
        countdown = _CHECK_EVERY
        for line in lines:
            countdown -= 1
            if not countdown:
                countdown = _CHECK_EVERY
                if clock() > deadline:
                    raise _OverBudget
            if not line:
                continue
            head, _, value_text = line.rpartition(" ")
            if line[0] == "#":
                if head and len(heads) < max_heads:
                    heads[head] = b""  # any line starting so is a comment
                continue
            prefix = known_get(head)
            if not prefix or not value_text or "\t" in value_text or "\r" in value_text:
                self.new_line(line)
                continue
            try:
                if value_text[0] in _VALUE_START and "_" not in value_text:
                    value = float(value_text)
                else:
                    value = value_of(value_text)
            except ValueError:  # BadLine included
                self.bad += 1
                continue
            series[prefix] = value
            if len(heads) < max_heads:
                heads[head] = prefix


_buffer = bytearray()  # this process's request being written, kept between batches
_KEEP_BUFFER = 64 * MIB  # past this, a request's buffer is given back after it


def _compress(pieces: list[bytes | tuple[struct.Struct, list[object]]]) -> bytes:
    """Write the pieces into one buffer, then compress it: no copy of the whole request."""
    global _buffer  # one per worker process: its pages stay mapped from one batch to the next
    total = sum(len(piece) if isinstance(piece, bytes) else piece[0].size for piece in pieces)
    if len(_buffer) < total:
        _buffer = bytearray(total)
    buffer = _buffer
    position = 0
    for piece in pieces:
        if isinstance(piece, bytes):
            end = position + len(piece)
            buffer[position:end] = piece
        else:
            layout, fields = piece
            layout.pack_into(buffer, position, *fields)
            end = position + layout.size
        position = end
    with memoryview(buffer) as view:
        payload = remote_write.compress(view[:total])
    if len(_buffer) > _KEEP_BUFFER:
        _buffer = bytearray()
    return payload


def build_batch(
    submissions: list[Submission], limits: ConversionLimits = CONVERSION_LIMITS
) -> Batch:
    """Turn heartbeats into one compressed remote-write request (runs in a worker process).

    The garbage collector is paused meanwhile: conversion makes no reference cycles, and its
    thousands of short-lived tuples would otherwise start collections that walk the cache.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_batch(submissions, limits)
    finally:
        if was_enabled:
            gc.enable()


def _build_batch(submissions: list[Submission], limits: ConversionLimits) -> Batch:
    started = time.process_time()
    cache = head_cache(limits)
    pieces: list[bytes | tuple[struct.Struct, list[object]]] = []
    series = bad_lines = 0
    cut: list[str] = []
    for submission in submissions:
        begun = time.process_time()
        cluster, heartbeat = submission.cluster, submission.heartbeat
        sample_size, tail = remote_write.sample_tail(submission.timestamp_ms)
        own: list[bytes] = []
        for labels, value in cluster_series(cluster, heartbeat):
            remote_write.append_series(
                own, remote_write.series_prefix(_encode(labels), sample_size), value, tail
            )
            series += 1
        pieces.append(b"".join(own))
        seen_members = set()
        chars = 0
        for member in heartbeat.server_metrics or ():
            if member.member in seen_members:
                continue  # the same member twice would repeat its series with another value
            seen_members.add(member.member)
            chars += len(member.metrics)
            if chars > limits.max_metrics_chars:
                cut.append(cluster)
                break
            key = (cluster, member.member, sample_size)
            converting = _Member(
                cluster, member.member, sample_size, limits, begun + limits.cpu_seconds
            )
            try:
                converting.convert(member.metrics, cache.get(key))
            except _OverBudget:
                cut.append(cluster)
                break
            finally:
                bad_lines += converting.bad
            if converting.remembered is not None:
                cache.put(key, converting.remembered)
            pieces.append(converting.encoded(tail))
            series += len(converting.samples)
    payload = _compress(pieces)
    return Batch(
        payload=payload,
        heartbeats=len(submissions),
        series=series,
        bad_lines=bad_lines,
        cpu_seconds=time.process_time() - started,
        cut=tuple(cut),
    )
