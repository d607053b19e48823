"""Forwarding without a network: metrics text to samples, series to remote write, the queue."""

from __future__ import annotations

import json
import math

import cramjam
from cluster_manager.fleet import StatusGenerator
from cluster_manager.forwarding import Forwarder, ForwardingLimits, remote_write
from cluster_manager.forwarding.exposition import parse_metrics
from cluster_manager.forwarding.series import Submission, build_batch
from cluster_manager.heartbeats import parse_heartbeat
from prometheus_server import scrape, value


def test_sample_lines_are_read_with_labels_values_and_escapes():
    parsed = parse_metrics(
        "# HELP lxd_x A help line.\n"
        "# TYPE lxd_x gauge\n"
        'lxd_x{b="2",a="1"} 1.5\n'
        "lxd_y 7 1700000000000\r\n"
        'lxd_z{path="C:\\\\dir",say="\\"hi\\"\\n"} -Inf\n'
        'lxd_n{empty="",kept="k"} NaN\n'
        "  \n"
    )

    assert parsed.bad_lines == 0
    by_name = {name: (labels, val) for name, labels, val in parsed.samples}
    assert by_name["lxd_x"] == ((("b", "2"), ("a", "1")), 1.5)
    assert by_name["lxd_y"] == ((), 7.0)
    assert by_name["lxd_z"] == ((("path", "C:\\dir"), ("say", '"hi"\n')), -math.inf)
    assert by_name["lxd_n"][0] == (("kept", "k"),)
    assert math.isnan(by_name["lxd_n"][1])


def test_bad_lines_are_skipped_and_counted_and_the_rest_kept():
    bad = [
        'lxd_a{x="unterminated} 1',
        "0lxd 1",
        "lxd_b",
        "lxd_c{} one",
        'lxd_d{x="1",x="2"} 1',
        'lxd_e{__name__="f"} 1',
        'lxd_f{x="\\q"} 1',
        "lxd_g 1 not-a-time",
        "lxd_h 1_000",
        "lxd_i inf",
        'lxd_j{x="1"',
    ]
    text = "\n".join(["lxd_ok 1", *bad, "lxd_ok2 2"])

    parsed = parse_metrics(text)

    assert parsed.bad_lines == len(bad)
    assert [(name, val) for name, _, val in parsed.samples] == [("lxd_ok", 1.0), ("lxd_ok2", 2.0)]


def heartbeat_with_metrics(text: str):
    payload = StatusGenerator("unit", members=1, metrics_bytes=1024).next()
    payload["server_metrics"] = [{"member": "m1", "service": "LXD", "metrics": text}]
    payload["storage_pool_usages"] = [
        {"name": "local", "member": "m1", "total": 100, "usage": 40},
        {"name": "remote", "member": "", "total": 1000, "usage": 10},
    ]
    return payload, parse_heartbeat(json.dumps(payload).encode())


def test_batch_is_snappy_protobuf_with_sorted_labels_and_one_sample_per_series():
    payload, heartbeat = heartbeat_with_metrics(
        'lxd_q{member="inner",Zeta="z"} 1\nlxd_q{Zeta="z",member="inner"} 2\nbroken\n'
    )

    batch = build_batch([Submission("c1", heartbeat, 1_700_000_000_123)])

    raw = bytes(cramjam.snappy.decompress_raw(batch.payload))
    request = remote_write.WriteRequest()
    request.ParseFromString(raw)
    series = list(remote_write.series_of(request))
    assert batch.series == len(series) == len(request.timeseries)
    assert batch.bad_lines == 1
    for ts in request.timeseries:
        names = [label.name for label in ts.labels]
        assert names == sorted(names), names
    assert {t for _, _, t in series} == {1_700_000_000_123}
    lxd = [(labels, val) for labels, val, _ in series if labels["__name__"] == "lxd_q"]
    assert lxd == [
        (
            {
                "__name__": "lxd_q",
                "Zeta": "z",
                "cluster": "c1",
                "exported_member": "inner",
                "member": "m1",
            },
            2.0,
        )
    ]
    pools = {
        (labels.get("pool"), labels.get("member")): val
        for labels, val, _ in series
        if labels["__name__"] == "mcm_cluster_storage_pool_used_bytes"
    }
    assert pools == {("local", "m1"): 40, ("remote", None): 10}
    memory = [v for lb, v, _ in series if lb["__name__"] == "mcm_cluster_memory_used_bytes"]
    assert memory == [payload["memory_usage"]]


async def test_full_queue_drops_the_oldest_heartbeats_and_counts_them(server):
    _, heartbeat = heartbeat_with_metrics("lxd_a 1\n")
    forwarder = Forwarder(
        ["http://127.0.0.1:9/api/v1/write"], limits=ForwardingLimits(max_queued_heartbeats=3)
    )
    before = await scrape(server.ops_port)

    for name in ("a", "b", "c", "d", "e"):
        forwarder.submit(name, heartbeat)  # not started: nothing is taken off the queue

    after = await scrape(server.ops_port)
    assert forwarder.queued_heartbeats == 3
    name = "mcm_forward_dropped_heartbeats_total"
    assert value(after, name, reason="queue_full") - value(before, name, reason="queue_full") == 2


def test_forwarder_without_destinations_does_nothing():
    _, heartbeat = heartbeat_with_metrics("lxd_a 1\n")
    forwarder = Forwarder([])

    forwarder.submit("a", heartbeat)

    assert not forwarder.enabled
    assert forwarder.queued_heartbeats == 0
