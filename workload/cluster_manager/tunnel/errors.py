"""How a request through a tunnel fails, each an API error with its status."""

from __future__ import annotations

from cluster_manager.errors import ApiError, ServiceUnavailable, TooManyRequests

ENABLE_COMMAND = "microcloud cluster-manager set reverse_tunnel true"


class TunnelNotConnected(ServiceUnavailable):
    """503: the cluster has no live tunnel (never opened, closed, or its unit is gone)."""

    def __init__(self, cluster: str, detail: str = "") -> None:
        super().__init__(
            f"tunnel not connected: cluster {cluster} has no reverse tunnel to this manager"
            f"{detail}; enable it on a member of the cluster with `{ENABLE_COMMAND}`"
        )


class TunnelTimeout(ApiError):
    """504: the cluster (or the unit holding its tunnel) did not answer in time."""

    status = 504


class TunnelBroken(ApiError):
    """502: the tunnel ended or the cluster sent a frame that is not an answer."""

    status = 502


class TunnelBusy(TooManyRequests):
    """429: too many requests already wait for this cluster."""

    def __init__(self, cluster: str, limit: int) -> None:
        super().__init__(f"{limit} requests already wait for cluster {cluster}", retry_after=1)
