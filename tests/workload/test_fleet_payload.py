"""The simulated clusters' heartbeat payload looks like what the real MicroCloud client sends."""

from __future__ import annotations

import json
import re

import pytest
from cluster_manager.fleet.metrics import go_float
from cluster_manager.fleet.payload import PAYLOAD_KEYS, StatusGenerator

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
SAMPLE = re.compile(rf"({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (\S+)")
LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_exposition(text: str) -> dict[str, dict]:
    """Parse Prometheus text exposition strictly; return families with their samples."""
    assert text.endswith("\n"), "exposition text must end with a newline"
    families: dict[str, dict] = {}
    current = None
    seen_series = set()
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}: {line!r}"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(NAME, name), where
            assert help_text, where
            assert name not in families, f"family {name} appears twice ({where})"
            current = families[name] = {"help": help_text, "type": None, "samples": []}
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert current is families.get(name), f"TYPE without HELP: {where}"
            assert current["type"] is None, where
            assert kind in TYPES, where
            current["type"] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"not a sample: {where}"
            name, labels, value = match.groups()
            assert current is families.get(name), f"sample outside its family: {where}"
            assert current["type"], f"no TYPE for {where}"
            pairs = dict(LABEL_PAIR.findall(labels or ""))
            series = (name, tuple(sorted(pairs.items())))
            assert series not in seen_series, f"duplicate series: {where}"
            seen_series.add(series)
            current["samples"].append((pairs, float(value)))
    for name, family in families.items():
        assert family["samples"], f"family {name} has no samples"
    return families


def sample_value(families: dict[str, dict], name: str, **labels: str) -> float:
    """The value of one series."""
    values = [v for pairs, v in families[name]["samples"] if pairs == labels]
    assert len(values) == 1, f"{name}{labels}: {values}"
    return values[0]


@pytest.fixture(scope="module")
def payloads() -> list[dict]:
    """Payloads of many different clusters (small metrics, to be quick)."""
    return [StatusGenerator(seed, metrics_bytes=16 * 1024).next() for seed in range(60)]


def test_every_key_is_sent_with_the_go_clients_types(payloads: list[dict]) -> None:
    for payload in payloads:
        assert set(payload) == set(PAYLOAD_KEYS), payload.keys()
        assert payload["cpu_total_count"] == 0
        for key in ("cpu_load_1", "cpu_load_5", "cpu_load_15"):
            assert re.fullmatch(r"\d+\.\d\d", payload[key]), payload[key]
        assert isinstance(payload["memory_total_amount"], int)
        assert 0 < payload["memory_usage"] < payload["memory_total_amount"]
        assert re.fullmatch(r"https://[0-9.]+:8443", payload["ui_url"])
        for key in ("ceph_statuses", "member_statuses", "instance_statuses"):
            for item in payload[key] or []:
                assert set(item) == {"status", "count"}, item
                assert item["count"] > 0, item
        assert json.loads(json.dumps(payload)) == payload


def test_empty_lists_are_null_as_often_as_empty(payloads: list[dict]) -> None:
    for key in ("ceph_statuses", "instance_statuses"):
        empties = [p[key] for p in payloads if not p[key]]
        assert None in empties, f"{key} is never null"
        assert [] in empties, f"{key} is never []"


def test_statuses_use_lxd_and_microceph_names(payloads: list[dict]) -> None:
    members = {i["status"] for p in payloads for i in p["member_statuses"]}
    instances = {i["status"] for p in payloads for i in p["instance_statuses"] or []}
    ceph = {i["status"] for p in payloads for i in p["ceph_statuses"] or []}
    assert members <= {"Online", "Offline", "Evacuated"}
    assert "Online" in members
    assert instances <= {"Running", "Stopped", "Frozen", "Error"}
    assert "Running" in instances
    assert ceph <= {"ONLINE", "OFFLINE"}
    assert "ONLINE" in ceph


def test_members_are_counted_and_summed_consistently(payloads: list[dict]) -> None:
    for payload in payloads:
        members = [m["member"] for m in payload["server_metrics"]]
        assert sum(i["count"] for i in payload["member_statuses"]) == len(members)
        assert {m["service"] for m in payload["server_metrics"]} == {"LXD"}
        pools = payload["storage_pool_usages"]
        assert [p["member"] for p in pools if p["member"]] == members
        shared = [p for p in pools if p["member"] == ""]
        assert bool(shared) == bool(payload["ceph_statuses"]), pools
        for pool in pools:
            assert 0 <= pool["usage"] <= pool["total"], pool


def test_running_instances_are_those_in_the_metrics(payloads: list[dict]) -> None:
    for payload in payloads:
        running = sum(
            i["count"] for i in payload["instance_statuses"] or [] if i["status"] == "Running"
        )
        in_metrics = sum(
            sample_value(parse_exposition(m["metrics"]), "lxd_instances", project=p, type=t)
            for m in payload["server_metrics"]
            for p in ("default", "prod")
            for t in ("container", "virtual-machine")
            if p == "default" or f'project="{p}",type="{t}"' in m["metrics"]
        )
        assert running == in_metrics


@pytest.mark.parametrize("target", [20 * 1024, 200 * 1024])
def test_metrics_are_strict_exposition_text_of_the_asked_size(target: int) -> None:
    generator = StatusGenerator("size", metrics_bytes=target, with_instances=True, members=3)
    for member in generator.next()["server_metrics"]:
        text = member["metrics"]
        assert abs(len(text) - target) < target * 0.05, (len(text), target)
        families = parse_exposition(text)
        cpu = families["lxd_cpu_seconds_total"]
        assert cpu["type"] == "counter"
        assert {"cpu", "mode", "name", "project", "type"} == set(cpu["samples"][0][0])
        for name in (
            "lxd_memory_MemTotal_bytes",
            "lxd_disk_read_bytes_total",
            "lxd_network_receive_bytes_total",
            "lxd_filesystem_size_bytes",
            "lxd_procs_total",
            "lxd_instances",
            "lxd_go_goroutines",
            "lxd_uptime_seconds",
        ):
            assert name in families, f"{name} missing"


def test_values_evolve_plausibly_and_reproducibly() -> None:
    first = StatusGenerator(7, metrics_bytes=16 * 1024, with_instances=True, interval=60)
    again = StatusGenerator(7, metrics_bytes=16 * 1024, with_instances=True, interval=60)
    before, after = first.next(), first.next()
    assert again.next() == before
    assert again.next() == after
    assert before != after
    for old, new in zip(before["server_metrics"], after["server_metrics"], strict=True):
        old_families, new_families = (
            parse_exposition(old["metrics"]),
            parse_exposition(new["metrics"]),
        )
        uptime = sample_value(new_families, "lxd_uptime_seconds")
        assert uptime == pytest.approx(sample_value(old_families, "lxd_uptime_seconds") + 60)
        for name, family in old_families.items():
            if family["type"] != "counter":
                continue
            new_values = {tuple(sorted(p.items())): v for p, v in new_families[name]["samples"]}
            for pairs, value in family["samples"]:
                assert new_values[tuple(sorted(pairs.items()))] >= value, (name, pairs)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (3.0, "3"),
        (123456, "123456"),
        (1234567, "1.234567e+06"),
        (12345678, "1.2345678e+07"),
        (1e6, "1e+06"),
        (12345.678, "12345.678"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-3.25, "-3.25"),
    ],
)
def test_numbers_are_written_like_go_writes_a_float64(value: float, text: str) -> None:
    assert go_float(value) == text
