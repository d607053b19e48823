"""Prometheus remote write 1.0: a protobuf ``WriteRequest``, snappy-compressed (block format).

Requests are written in the protobuf wire format directly: a ``WriteRequest`` is only repeated
``TimeSeries`` (field 1), each its ``Label`` messages (field 1: name 1, value 2) and one
``Sample`` (field 2: double value 1, int64 timestamp 2), as in Prometheus's prompb/remote.proto
and types.proto (metadata, exemplars and histograms are not sent). Everything of a series but
its value is the same from one heartbeat to the next, so :func:`series_prefix` gives the bytes a
caller can keep and :func:`append_series` adds only the value and the timestamp. Writing the
bytes costs a fraction of building protobuf objects (which took 40 ms for 6,000 series).

The protobuf library's message classes, built here from a descriptor of those four messages,
only read requests back (:func:`decode`, for tests and the benchmark), so the encoder is checked
against an independent reader.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from cluster_manager.forwarding.exposition import Labels

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "User-Agent": "microcloud-cluster-manager",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

_Field = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="cluster_manager/remote_write.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str]) -> None:
        described = proto.message_type.add(name=name)
        for field_name, number, kind, type_name in fields:
            field = described.field.add(name=field_name, number=number, type=kind)
            if type_name:  # the messages inside are repeated, the scalars are not
                field.label, field.type_name = _Field.LABEL_REPEATED, type_name
            else:
                field.label = _Field.LABEL_OPTIONAL

    message("Label", ("name", 1, _Field.TYPE_STRING, ""), ("value", 2, _Field.TYPE_STRING, ""))
    message(
        "Sample", ("value", 1, _Field.TYPE_DOUBLE, ""), ("timestamp", 2, _Field.TYPE_INT64, "")
    )
    message(
        "TimeSeries",
        ("labels", 1, _Field.TYPE_MESSAGE, ".prometheus.Label"),
        ("samples", 2, _Field.TYPE_MESSAGE, ".prometheus.Sample"),
    )
    message("WriteRequest", ("timeseries", 1, _Field.TYPE_MESSAGE, ".prometheus.TimeSeries"))
    return proto


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
WriteRequest = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName("prometheus.WriteRequest")
)


pack_double = struct.Struct("<d").pack


_ONE_BYTE = [bytes((number,)) for number in range(128)]
_LABEL_FIELDS: dict[tuple[str, str], bytes] = {}  # label pairs repeat across series
_MAX_LABEL_FIELDS = 200_000


def varint(number: int) -> bytes:
    """Protobuf's base-128 varint; a negative int64 as its 64-bit two's complement."""
    if 0 <= number < 128:
        return _ONE_BYTE[number]
    number &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _field(tag: int, data: bytes) -> bytes:
    return _ONE_BYTE[tag] + varint(len(data)) + data


def _label_field(name: str, value: str, errors: str) -> bytes:
    label = _field(0x0A, name.encode(errors=errors))
    if value:
        label += _field(0x12, value.encode(errors=errors))
    return _field(0x0A, label)


def encode_labels(labels: Labels, errors: str = "strict") -> bytes:
    """The ``labels`` fields of a TimeSeries; ``labels`` sorted by name, ``__name__`` included.

    Raises:
        UnicodeEncodeError: a name or value is not valid Unicode (a lone surrogate) and
            ``errors`` is "strict" (with "replace" it is sent as "?").
    """
    if errors != "strict":
        return b"".join(_label_field(name, value, errors) for name, value in labels)
    known = _LABEL_FIELDS
    fields = []
    for pair in labels:
        field = known.get(pair)
        if field is None:
            field = _label_field(pair[0], pair[1], errors)
            if len(known) >= _MAX_LABEL_FIELDS:
                known.clear()  # bounded; a host's usual pairs come back at once
            known[pair] = field
        fields.append(field)
    return b"".join(fields)


def sample_tail(timestamp_ms: int) -> tuple[int, bytes]:
    """(size of a Sample message, the bytes after its value) for samples at ``timestamp_ms``."""
    tail = b"\x10" + varint(timestamp_ms)
    return 9 + len(tail), tail


def series_prefix(label_bytes: bytes, sample_size: int) -> bytes:
    """A TimeSeries up to its sample's value: what :func:`append_series` puts before a value."""
    sample = b"\x12" + varint(sample_size) + b"\x09"
    return (
        b"\x0a" + varint(len(label_bytes) + len(sample) + sample_size - 1) + label_bytes + sample
    )


def append_series(out: list[bytes], prefix: bytes, value: float, tail: bytes) -> None:
    """Add one series with one sample to the pieces of a request."""
    out += (prefix, pack_double(value), tail)


def encode(pieces: Iterable[bytes]) -> bytes:
    """Join a request's pieces and snappy-compress them (block format, as remote write needs)."""
    return compress(b"".join(pieces))


def compress(request: bytes | memoryview) -> bytes:
    """Snappy-compress a written request (block format, as remote write needs)."""
    return bytes(cramjam.snappy.compress_raw(request))


def decode(body: bytes) -> object:
    """Read a compressed request back (tests and the benchmark check what was sent)."""
    request = WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return request


def series_of(request: object) -> Iterable[tuple[dict[str, str], float, int]]:
    """Yield (labels, value, timestamp) of every sample of a decoded request."""
    for series in request.timeseries:  # type: ignore[attr-defined]
        labels = {label.name: label.value for label in series.labels}
        for sample in series.samples:
            yield labels, sample.value, sample.timestamp
