"""Forwarding without a network: metrics text to samples, series to remote write, the queue."""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import struct

import cramjam
import pytest
from aiohttp import web
from cluster_manager.fleet import StatusGenerator
from cluster_manager.forwarding import Forwarder, ForwardingLimits, memory, remote_write
from cluster_manager.forwarding import series as conversion
from cluster_manager.forwarding.exposition import parse_metrics
from cluster_manager.forwarding.memory import HeadCache
from cluster_manager.forwarding.series import ConversionLimits, Submission, build_batch
from cluster_manager.heartbeats import MemberMetrics, StoragePoolUsage, parse_heartbeat
from hypothesis import given, settings
from hypothesis import strategies as st
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


class Receiver:
    """A remote-write endpoint on a real socket that keeps every request body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.arrived = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Receiver:
        async def write(request: web.Request) -> web.Response:
            self.bodies.append(await request.read())
            self.arrived.set()
            return web.Response(status=204)

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/v1/write", write)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/api/v1/write"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def next(self) -> None:
        await asyncio.wait_for(self.arrived.wait(), 60)
        self.arrived.clear()

    def series(self, name: str) -> list[dict[str, str]]:
        return [
            labels
            for body in self.bodies
            for labels, _, _ in remote_write.series_of(remote_write.decode(body))
            if labels["__name__"] == name
        ]


async def test_a_dead_worker_is_counted_and_replaced(server):
    """The worker process is killed: its batch is dropped and counted, the next one is sent."""
    _, heartbeat = heartbeat_with_metrics("lxd_a 1\n")
    name = "mcm_forward_dropped_heartbeats_total"
    async with Receiver() as receiver:
        forwarder = Forwarder([receiver.url], limits=ForwardingLimits(batch_linger=0))
        await forwarder.start()
        try:
            forwarder.submit("first", heartbeat)
            await receiver.next()
            worker = forwarder._worker
            assert worker is not None
            assert worker.process is not None
            first_pid = worker.process.pid
            worker.process.kill()
            worker.process.join(10)
            before = after = await scrape(server.ops_port)

            forwarder.submit("lost", heartbeat)  # meets the dead worker
            for _ in range(600):
                after = await scrape(server.ops_port)
                failed = value(after, name, reason="conversion_failed")
                if failed - value(before, name, reason="conversion_failed") == 1:
                    break
                await asyncio.sleep(0.1)
            forwarder.submit("second", heartbeat)
            await receiver.next()
            assert worker.process is not None
            second_pid = worker.process.pid
        finally:
            await forwarder.stop()

    assert (
        value(after, name, reason="conversion_failed")
        - value(before, name, reason="conversion_failed")
        == 1
    )
    assert second_pid != first_pid
    clusters = [labels["cluster"] for labels in receiver.series("mcm_cluster_cpu_count")]
    assert clusters == ["first", "second"]


async def test_a_heartbeat_larger_than_the_shared_memory_is_forwarded():
    """The worker maps the larger memory the server made for it, and goes on."""
    big = "# " + "x" * (6 * 1024 * 1024) + "\nlxd_big 7\n"  # a comment costs nothing to read
    async with Receiver() as receiver:
        forwarder = Forwarder([receiver.url], limits=ForwardingLimits(batch_linger=0))
        await forwarder.start()
        try:
            for cluster, text in (("big", big), ("small", "lxd_small 1\n")):
                _, heartbeat = heartbeat_with_metrics(text)
                forwarder.submit(cluster, heartbeat)
                await receiver.next()
        finally:
            await forwarder.stop()

    assert [labels["cluster"] for labels in receiver.series("lxd_big")] == ["big"]
    assert [labels["cluster"] for labels in receiver.series("lxd_small")] == ["small"]


def test_forwarder_without_destinations_does_nothing():
    _, heartbeat = heartbeat_with_metrics("lxd_a 1\n")
    forwarder = Forwarder([])

    forwarder.submit("a", heartbeat)

    assert not forwarder.enabled
    assert forwarder.queued_heartbeats == 0


# The reader this project shipped before (a regular expression per line), as the reference for
# what is a valid line: right, but quadratic on blanks, so only short lines are given to it.
_OLD_SAMPLE = re.compile(
    r"[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)[ \t]*(?:\{(.*)\})?[ \t]*[ \t]([^ \t]+)"
    r"(?:[ \t]+([^ \t]+))?[ \t]*"
)
_OLD_PAIR = r'[ \t]*[a-zA-Z_][a-zA-Z0-9_]*[ \t]*=[ \t]*"(?:[^"\\]|\\.)*"[ \t]*'
_OLD_LABELS = re.compile(f"(?:{_OLD_PAIR},)*(?:{_OLD_PAIR})?")
_OLD_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"')
_OLD_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_OLD_SPECIAL = {"+Inf": math.inf, "-Inf": -math.inf, "Inf": math.inf, "NaN": math.nan}


def reference_samples(text: str) -> tuple[list, int]:
    samples, bad = [], 0
    for line in text.split("\n"):
        if not line or line[0] == "#" or line.isspace():
            continue
        if line[-1] == "\r":
            line = line[:-1]
        if line.lstrip()[:1] == "#":
            continue
        match = _OLD_SAMPLE.fullmatch(line)
        try:
            if match is None:
                raise ValueError
            name, label_text, value_text, timestamp = match.groups()
            pairs = []
            if label_text:
                if _OLD_LABELS.fullmatch(label_text) is None:
                    raise ValueError
                for key, raw in _OLD_LABEL.findall(label_text):
                    pairs.append((key, re.sub(r"\\(.)", lambda m: _OLD_ESCAPES[m.group(1)], raw)))
            if len(dict(pairs)) != len(pairs) or "__name__" in dict(pairs):
                raise ValueError
            if value_text in _OLD_SPECIAL:
                number = _OLD_SPECIAL[value_text]
            elif "_" in value_text or not (value_text[0].isdigit() or value_text[0] in "+-."):
                raise ValueError
            else:
                number = float(value_text)
            if timestamp is not None and re.fullmatch(r"-?[0-9]+", timestamp) is None:
                raise ValueError
        except (ValueError, KeyError):
            bad += 1
            continue
        samples.append((name, tuple(p for p in pairs if p[1]), number))
    return samples, bad


def same(samples: list) -> list:
    """Samples comparable with NaN in them (by the bytes of each value)."""
    return [(name, labels, struct.pack("<d", number)) for name, labels, number in samples]


NAMES = st.sampled_from(["lxd_a", "lxd_b:c", "_x", "lxd_a", "0bad", "lxd-bad", ""])
LABEL_VALUES = st.sampled_from(["", "v", "a b", "}", '\\"', "\\\\", "\\n", "\\q", "x,y", "=", "é"])
VALUES = st.sampled_from(
    ["1", "1.5", "-2e-05", "NaN", "+Inf", "-Inf", "Inf", "1_0", "inf", "", "x", "\u0661", ".5"]
)
BLANKS = st.sampled_from([" ", "  ", "\t", " \t", ""])


@st.composite
def metric_lines(draw) -> str:
    if draw(st.integers(0, 9)) == 0:  # anything at all, from the characters that matter
        return draw(st.text(alphabet=' \t{}"=,\\#\rabx_01.:-+\x0c', max_size=30))
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["# HELP lxd_a Help.", "# TYPE lxd_a gauge", "  # x", ""]))
    line = draw(BLANKS) + draw(NAMES)
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(["a", "b", "name", "cluster", "__name__", "9"])))
        pairs = [
            f'{draw(BLANKS)}{key}{draw(BLANKS)}={draw(BLANKS)}"{draw(LABEL_VALUES)}"{draw(BLANKS)}'
            for key in keys
        ]
        line += draw(BLANKS) + "{" + ",".join(pairs) + draw(st.sampled_from(["", ","])) + "}"
    line += draw(st.sampled_from([" ", "\t", "  ", ""])) + draw(VALUES)
    if draw(st.integers(0, 4)) == 0:
        line += draw(BLANKS) + draw(st.sampled_from(["1700000000000", "-5", "x", ""]))
    return line + draw(st.sampled_from(["", "", "\r", " "]))


metric_texts = st.lists(metric_lines(), max_size=12).map("\n".join)


@given(metric_texts)
@settings(max_examples=400, deadline=None)
def test_reader_agrees_with_the_regular_expression_it_replaced(text):
    parsed = parse_metrics(text)

    samples, bad = reference_samples(text)
    assert (same(parsed.samples), parsed.bad_lines) == (same(samples), bad)


def forwarded(text: str, *, forget: bool) -> tuple[list, int]:
    """What one heartbeat with ``text`` as its member's metrics becomes (sorted series)."""
    if forget:
        memory.forget()
    _, heartbeat = heartbeat_with_metrics(text)
    batch = build_batch([Submission("c1", heartbeat, 1_700_000_000_000)])
    series = [
        (sorted(labels.items()), struct.pack("<d", number), timestamp)
        for labels, number, timestamp in remote_write.series_of(remote_write.decode(batch.payload))
    ]
    return sorted(series), batch.bad_lines


@given(metric_texts, metric_texts)
@settings(max_examples=300, deadline=None)
def test_remembered_series_give_the_same_request_as_a_first_reading(before, text):
    first_sight = forwarded(text, forget=True)

    forwarded(before, forget=True)
    after_before = forwarded(text, forget=False)
    again = forwarded(text, forget=False)
    same_layout = forwarded(text, forget=False)  # the heads in the same order as last time

    assert after_before == first_sight
    assert again == first_sight
    assert same_layout == first_sight


NEW_VALUES = st.sampled_from(
    ["1", "2.5", "-0", "0", "-0.0", "00", "1e5", "1E+5", "1e400", "-1e400", "1e-400", ".5", "5.",
     "+1", "NaN", "+Inf", "1_0", "1,2", "[1]", "", "x", "12345678901234567890123456789",
     "0.1000000000000000055511151231257827", "\u0661", "1 1700000000000", "true", "-"]
)  # fmt: skip
SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\t", ""])


@st.composite
def texts_with_the_same_heads(draw) -> tuple[str, str]:
    """A text, and the same text with other values after each line's last blank."""
    lines = draw(st.lists(metric_lines(), max_size=12))
    changed = []
    for line in lines:
        head, blank, _ = line.rpartition(" ")
        if blank and draw(st.integers(0, 5)):
            line = head + draw(SEPARATORS) + draw(NEW_VALUES)
        changed.append(line)
    return "\n".join(lines), "\n".join(changed)


@given(texts_with_the_same_heads())
@settings(max_examples=400, deadline=None)
def test_new_values_after_known_heads_give_the_same_request_as_a_first_reading(texts):
    before, text = texts
    first_sight = forwarded(text, forget=True)

    forwarded(before, forget=True)
    forwarded(before, forget=False)
    forwarded(before, forget=False)  # its layout is known from here on
    known_layout = forwarded(text, forget=False)

    assert known_layout == first_sight
    assert forwarded(text, forget=False) == first_sight


def test_values_read_together_are_the_doubles_float_reads():
    rng = random.Random(16)  # noqa: S311 - test data, seeded
    texts = []
    for _ in range(20_000):
        kind = rng.randrange(5)
        if kind == 0:
            texts.append(repr(rng.uniform(-1e6, 1e6)))
        elif kind == 1:
            texts.append(
                f"{rng.uniform(-1, 1) * 10 ** rng.randint(-320, 308):.{rng.randint(0, 20)}e}"
            )
        elif kind == 2:
            texts.append(str(rng.randint(-(10**25), 10**25)))
        elif kind == 3:
            texts.append(f"{rng.randint(0, 10**12)}.{rng.randint(0, 10**20):020d}")
        else:
            texts.append(repr(struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]))
    texts = [text for text in texts if "n" not in text]  # nan and inf are read line by line

    values = conversion._values(",".join(texts), len(texts), spaced=False)

    assert values is not None
    assert [struct.pack("<d", v) for v in values] == [struct.pack("<d", float(t)) for t in texts]
    assert conversion._values("1,-0,2", 3, spaced=False) is None  # -0.0, not the integer 0
    assert conversion._values(" 1, 2", 2, spaced=True) == [1.0, 2.0]
    assert conversion._values("  1,2", 2, spaced=True) is None  # not one blank before each


def test_known_lines_are_read_without_a_python_step_per_line():
    """The usual case takes the fast path: same heads, same order, plain values."""
    generator = StatusGenerator("fast", members=1, metrics_bytes=20 * 1024)
    texts = [generator.next()["server_metrics"][0]["metrics"] for _ in range(4)]
    key = ("c1", "m1", remote_write.sample_tail(1_700_000_000_000)[0])
    memory.forget()
    for text in texts[:3]:
        forwarded(text, forget=False)
    remembered = memory.head_cache(conversion.CONVERSION_LIMITS).get(key)
    assert remembered is not None
    assert remembered.layout is not None  # series written with one struct call

    known = forwarded(texts[3], forget=False)

    assert memory.head_cache(conversion.CONVERSION_LIMITS).get(key) is remembered
    assert known == forwarded(texts[3], forget=True)


def test_a_known_host_with_new_values_is_read_like_a_new_one():
    generator = StatusGenerator("known", members=1, metrics_bytes=20 * 1024)
    texts = [generator.next()["server_metrics"][0]["metrics"] for _ in range(3)]
    texts[2] += 'lxd_new{a="1"} 5\nlxd_bad{ 1\nlxd_a{x="1"} NaN\n'
    memory.forget()
    remembered: tuple[list, int] = ([], 0)
    for text in texts:
        remembered = forwarded(text, forget=False)
        assert remembered == forwarded(text, forget=True)
    assert remembered[1] == 1
    assert len(remembered[0]) == len(parse_metrics(texts[2]).samples) + len(
        conversion.cluster_series("c1", heartbeat_with_metrics("")[1])
    )


def heartbeat_of(cluster: str, text: str, members: int = 1) -> Submission:
    _, heartbeat = heartbeat_with_metrics(text)
    heartbeat.server_metrics = [
        MemberMetrics(member=f"m{i}", service="LXD", metrics=text) for i in range(members)
    ]
    return Submission(cluster, heartbeat, 1_700_000_000_000)


def lxd_series(batch) -> dict[str, int]:
    counts: dict[str, int] = {}
    for labels, _, _ in remote_write.series_of(remote_write.decode(batch.payload)):
        if labels["__name__"].startswith("lxd_"):
            counts[labels["cluster"]] = counts.get(labels["cluster"], 0) + 1
    return counts


def test_heartbeat_over_its_time_budget_is_cut_and_the_rest_of_the_batch_is_whole():
    hostile = "".join(f'lxd_x{{n="{n}",pad="{"p" * 50}"}} 1\n' for n in range(20_000))
    normal = "".join(f'lxd_y{{n="{n}"}} 2\n' for n in range(200))  # under one clock check
    memory.forget()

    batch = build_batch(
        [heartbeat_of("hostile", hostile, members=2), heartbeat_of("normal", normal)],
        ConversionLimits(cpu_seconds=0.001),
    )

    assert batch.cut == ("hostile",)
    counts = lxd_series(batch)
    assert counts["normal"] == 200
    assert counts.get("hostile", 0) < 20_000


def test_metrics_over_the_size_budget_are_not_forwarded_and_counted():
    text = "".join(f"lxd_{n} {n}\n" for n in range(100))
    memory.forget()

    batch = build_batch(
        [heartbeat_of("big", text, members=3)], ConversionLimits(max_metrics_chars=2 * len(text))
    )

    assert batch.cut == ("big",)
    assert lxd_series(batch) == {"big": 200}  # two members fit, the third does not


def test_a_line_over_the_line_limit_is_bad_without_being_read():
    text = 'lxd_ok 1\nlxd_long{a="' + "x" * 70_000 + '"} 1\nlxd_ok2 2\n'

    batch = build_batch([heartbeat_of("c1", text)], ConversionLimits(max_line_chars=65_536))

    assert batch.bad_lines == 1
    assert lxd_series(batch) == {"c1": 2}


def test_a_label_that_is_not_unicode_is_a_bad_line_not_a_failed_batch():
    """The decoder refuses lone surrogates in a body; the converter copes with them anyway."""
    text = 'lxd_ok 1\nlxd_s{a="\ud800"} 1\n'
    _, heartbeat = heartbeat_with_metrics("lxd_ok 1\n")
    heartbeat.server_metrics = [MemberMetrics("m1", "LXD", text)]
    heartbeat.storage_pool_usages = [StoragePoolUsage("\udcff", "", 1, 1)]

    batch = build_batch([Submission("c1", heartbeat, 1)])

    assert batch.bad_lines == 1
    pools = [
        labels["pool"]
        for labels, _, _ in remote_write.series_of(remote_write.decode(batch.payload))
        if labels["__name__"] == "mcm_cluster_storage_pool_used_bytes"
    ]
    assert "?" in pools


def test_remembered_series_are_bounded_per_member_and_in_total():
    text = "".join(f'lxd_x{{n="{n}"}} 1\n' for n in range(500))
    limits = ConversionLimits(cache_heads_per_member=100, cache_bytes=60_000)
    memory.forget()

    for cluster in ("a", "b", "c", "d"):
        batch = build_batch([heartbeat_of(cluster, text)], limits)
        assert lxd_series(batch) == {cluster: 500}

    cache = memory.head_cache(limits)
    size, _ = remote_write.sample_tail(1_700_000_000_000)
    assert isinstance(cache, HeadCache)
    assert cache.bytes <= 60_000
    assert 1 <= len(cache) < 4
    kept = cache.get(("a", "m0", size))
    assert kept is not None
    assert 0 < len(kept.heads) <= 100  # members in use keep their place
    assert cache.get(("d", "m0", size)) is None  # no room for the last one


def test_a_member_idle_for_long_makes_room_for_a_new_one():
    limits = ConversionLimits(cache_bytes=2_500, cache_idle_seconds=600)
    cache = HeadCache(limits)
    heads = {f"lxd_x{{n={n}}}": b"p" * 50 for n in range(5)}  # about 1,000 bytes

    def remembered(cluster: str) -> int:
        entry = cache.get((cluster, "m", 1))
        return len(entry.heads) if entry is not None else 0

    cache.put(("a", "m", 1), memory.Remembered(dict(heads)), now=0)
    cache.put(("b", "m", 1), memory.Remembered(dict(heads)), now=100)
    cache.put(("c", "m", 1), memory.Remembered(dict(heads)), now=500)  # no room for c
    assert (remembered("a"), remembered("c")) == (5, 0)
    cache.put(("c", "m", 1), memory.Remembered(dict(heads)), now=650)  # a is idle now

    assert (remembered("a"), remembered("b"), remembered("c")) == (0, 5, 5)
    assert cache.bytes <= 2_500


@pytest.mark.parametrize("timestamp", [0, 1, 127, 128, 1_700_000_000_123, -1])
def test_written_requests_are_read_back_by_the_protobuf_library(timestamp):
    size, tail = remote_write.sample_tail(timestamp)
    labels = (("__name__", "m"), ("a", ""), ("b", "é" * 200))
    pieces: list[bytes] = []
    prefix = remote_write.series_prefix(remote_write.encode_labels(labels), size)

    remote_write.append_series(pieces, prefix, -0.5, tail)
    remote_write.append_series(pieces, prefix, math.inf, tail)

    request = remote_write.decode(remote_write.encode(pieces))
    assert list(remote_write.series_of(request)) == [
        ({"__name__": "m", "a": "", "b": "é" * 200}, -0.5, timestamp),
        ({"__name__": "m", "a": "", "b": "é" * 200}, math.inf, timestamp),
    ]
