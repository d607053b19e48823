"""The tunnels' own metrics on ``/metrics``: open tunnels and requests by outcome.

``mcm_tunnels_open`` is read from this process's hub when Prometheus scrapes (with several
workers, each worker's is labelled ``worker``); ``mcm_tunnel_requests_total`` counts the
requests this process was asked to send through a tunnel (wherever the tunnel lives), by outcome.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

import prometheus_client
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cluster_manager.errors import ApiError
from cluster_manager.tunnel.errors import (
    TunnelBroken,
    TunnelBusy,
    TunnelNotConnected,
    TunnelTimeout,
)

OUTCOMES = ("answered", "not_connected", "timeout", "broken", "busy", "refused", "error")
TUNNEL_REQUESTS = prometheus_client.Counter(
    "mcm_tunnel_requests",
    "Requests sent through a cluster's tunnel from this process, by outcome: answered (any "
    "status the cluster gave), not_connected (503), timeout (504), broken (502), busy (429), "
    "refused (a bad request or an unknown cluster), error.",
    ["outcome"],
)
for _outcome in OUTCOMES:
    TUNNEL_REQUESTS.labels(_outcome)


class OpenTunnels(Protocol):
    """What the gauge reads from a hub."""

    def open_count(self) -> int:
        """Tunnels open on this process."""
        ...


_hubs: list[OpenTunnels] = []


class _TunnelCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "mcm_tunnels_open", "Reverse tunnels of clusters open on this process."
        )
        gauge.add_metric([], sum(hub.open_count() for hub in list(_hubs)))
        yield gauge


prometheus_client.REGISTRY.register(_TunnelCollector())


def track(hub: OpenTunnels) -> None:
    """Count a hub's tunnels until :func:`untrack`."""
    _hubs.append(hub)


def untrack(hub: OpenTunnels) -> None:
    """Stop counting a hub's tunnels."""
    with contextlib.suppress(ValueError):
        _hubs.remove(hub)


def outcome(error: BaseException | None) -> str:
    """The outcome label of a request that raised ``error`` (None: the cluster answered)."""
    if error is None:
        return "answered"
    for kind, name in (
        (TunnelNotConnected, "not_connected"),
        (TunnelTimeout, "timeout"),
        (TunnelBroken, "broken"),
        (TunnelBusy, "busy"),
        (ApiError, "refused"),
    ):
        if isinstance(error, kind):
            return name
    return "error"
