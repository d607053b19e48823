"""Prometheus remote write 1.0: a protobuf ``WriteRequest``, snappy-compressed (block format).

The message classes come from the protobuf library (its C "upb" backend), built at import time
from a descriptor of the four messages remote write 1.0 uses: prometheus.WriteRequest,
TimeSeries, Label and Sample (field numbers as in Prometheus's prompb/remote.proto and
types.proto; metadata, exemplars and histograms are not sent). Measured on LXD metrics it builds
6,000 series in about 40 ms, faster than a hand-written encoder in Python, and leaves the wire
format to the library.
"""

from __future__ import annotations

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


def add_series(request: object, labels: Labels, value: float, timestamp_ms: int) -> None:
    """Append one series with one sample; ``labels`` sorted by name, ``__name__`` included."""
    series = request.timeseries.add()  # type: ignore[attr-defined]
    add_label = series.labels.add
    for name, label_value in labels:
        add_label(name=name, value=label_value)
    series.samples.add(value=value, timestamp=timestamp_ms)


def encode(request: object) -> bytes:
    """Serialise and snappy-compress (block format, as remote write requires)."""
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))  # type: ignore[attr-defined]


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
