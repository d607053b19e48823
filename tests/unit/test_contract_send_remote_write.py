"""Contract with prometheus-k8s: ``prometheus_remote_write``, this charm the requirer.

canonical/prometheus-k8s-operator (main, 432c227): every Prometheus unit writes
``remote_write`` = JSON ``{"url": "<server url>/api/v1/write"}`` in its unit databag
(lib/charms/prometheus_k8s/v1/prometheus_remote_write.py:799-803, endpoint path from
src/charm.py:244-248).
"""

from __future__ import annotations

import json
import tomllib

from charm_scenario import service_status, with_relations
from ops import pebble, testing

PROM = "http://prometheus-k8s-{}.prometheus-k8s-endpoints.cos.svc.cluster.local:9090"


def _prometheus(*units: int, **raw: str) -> testing.Relation:
    data = {
        unit: {"remote_write": json.dumps({"url": f"{PROM.format(unit)}/api/v1/write"})}
        for unit in units
    }
    for unit, value in raw.items():
        data[int(unit.removeprefix("u"))] = {"remote_write": value}
    return testing.Relation(
        "send-remote-write", remote_app_name="prometheus-k8s", remote_units_data=data
    )


def _urls(config_dir) -> list[str]:
    return tomllib.loads((config_dir / "config.toml").read_text())["remote_write_urls"]


def test_every_prometheus_unit_receives_the_heartbeats(config_dir, ctx, running_leader):
    relation = _prometheus(0, 1)
    ctx.run(
        ctx.on.relation_changed(relation, remote_unit=1), with_relations(running_leader, relation)
    )
    assert _urls(config_dir) == [f"{PROM.format(n)}/api/v1/write" for n in (0, 1)]


def test_malformed_unit_data_is_skipped_without_a_hook_error(config_dir, ctx, running_leader):
    relation = _prometheus(0, u1="{not json", u2=json.dumps({"url": "ftp://x"}))
    out = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=1), with_relations(running_leader, relation)
    )
    assert _urls(config_dir) == [f"{PROM.format(0)}/api/v1/write"]
    assert service_status(out) == pebble.ServiceStatus.ACTIVE
