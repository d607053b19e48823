"""The connector's refusal log (once per key and interval, escaped) and its buckets' settings."""

from __future__ import annotations

import logging

import pytest
from cluster_manager.connector.limits import RefusalLog
from cluster_manager.settings import Settings, SettingsError

LOGGER = "cluster_manager.connector.limits"


def test_refusals_are_logged_once_per_key_and_interval_with_the_count_held_back(
    monkeypatch, caplog
):
    clock = [1000.0]
    monkeypatch.setattr("cluster_manager.connector.limits.time.monotonic", lambda: clock[0])
    log = RefusalLog(interval=60)
    caplog.set_level(logging.WARNING, logger=LOGGER)

    for _ in range(5):
        log.refused("heartbeat", "a", "cluster a")
    log.refused("heartbeat", "b", "cluster b")
    clock[0] += 61
    log.refused("heartbeat", "a", "cluster a")

    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "rate limited (heartbeat) 'cluster a'; 0 more refused since the last report",
        "rate limited (heartbeat) 'cluster b'; 0 more refused since the last report",
        "rate limited (heartbeat) 'cluster a'; 4 more refused since the last report",
    ]


def test_a_crafted_label_cannot_forge_a_log_line(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)

    RefusalLog(interval=60).refused("join_name", "x", "edge\n2026-12-06 INFO forged\x1b[31m")

    (line,) = [record.getMessage() for record in caplog.records]
    assert "\n" not in line
    assert "\x1b" not in line
    assert "edge\\n2026-12-06 INFO forged\\x1b[31m" in line


def test_the_refusal_log_stays_bounded(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("cluster_manager.connector.limits.time.monotonic", lambda: clock[0])
    log = RefusalLog(interval=60, max_keys=100)

    for n in range(1000):
        log.refused("heartbeat", f"key-{n}", "x")

    assert len(log._seen) <= 100


@pytest.mark.parametrize(
    "changes",
    [{"probe_rate_per_second": 0}, {"leave_burst": 0}, {"heartbeat_rate_per_minute": -1}],
)
def test_a_bucket_that_could_never_refill_is_refused_at_start(changes):
    with pytest.raises(SettingsError, match="must be above 0"):
        Settings(**changes)
