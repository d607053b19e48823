"""Pebble log forwarding to Loki: the ``log-targets`` of the workload's layer.

Pebble pushes the service's output to each Loki push URL itself; nothing runs beside the
workload. A target whose URL went away stays in the plan (layers cannot be removed) with its
services taken away (``-all``), so Pebble stops forwarding to it.
"""

from __future__ import annotations

import hashlib

import ops

TARGET_PREFIX = "loki-"
LAYER = "log-forwarding"


def target_name(url: str) -> str:
    """A stable target name for a push URL."""
    return TARGET_PREFIX + hashlib.sha256(url.encode()).hexdigest()[:12]


def build_layer(
    urls: list[str],
    planned: dict[str, ops.pebble.LogTarget],
    labels: dict[str, str],
    service: str,
) -> ops.pebble.Layer:
    """Targets for ``urls`` forwarding ``service``; planned targets of other URLs disabled."""
    targets: dict[str, ops.pebble.LogTargetDict] = {}
    for url in urls:
        targets[target_name(url)] = {
            "override": "replace",
            "type": "loki",
            "location": url,
            "services": [service],
            "labels": dict(labels),
        }
    for name, target in planned.items():
        if name.startswith(TARGET_PREFIX) and name not in targets and target.services != ["-all"]:
            targets[name] = {
                "override": "replace",
                "type": "loki",
                "location": target.location,
                "services": ["-all"],
            }
    return ops.pebble.Layer({"log-targets": targets})


def needs_update(layer: ops.pebble.Layer, planned: dict[str, ops.pebble.LogTarget]) -> bool:
    """Whether the plan lacks any target of ``layer`` as the layer has it."""
    return any(
        planned.get(name) is None or planned[name].to_dict() != target.to_dict()
        for name, target in layer.log_targets.items()
    )
