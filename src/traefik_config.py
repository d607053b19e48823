"""Traefik dynamic configuration: TCP routers with TLS passthrough to every unit.

Traefik never terminates TLS here: the Management API serves the certificate from the
``certificates`` integration and the Cluster Connector serves the pinned connector
certificate, so Traefik only reads the SNI of each connection and forwards its bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

# Traefik's entrypoint for TLS traffic (port 443) in the traefik-k8s charm.
TLS_ENTRYPOINT = "websecure"
# TCP health checks (Traefik 3.5 and later; Traefik 2.11, which traefik-k8s runs, and 3.0 to 3.4
# refuse the whole file with them): a unit that stops answering leaves the rotation.
HEALTH_CHECK = {"interval": "5s", "timeout": "3s"}


def _route(
    prefix: str, domain: str, hosts: list[str], port: int, health_check: bool
) -> tuple[dict, dict]:
    router = {
        "rule": f"HostSNI(`{domain}`)",
        "entryPoints": [TLS_ENTRYPOINT],
        "service": prefix,
        "tls": {"passthrough": True},
    }
    balancer: dict = {"servers": [{"address": f"{host}:{port}"} for host in hosts]}
    if health_check:
        balancer["healthCheck"] = dict(HEALTH_CHECK)
    return router, {"loadBalancer": balancer}


def build_config(
    *,
    name: str,
    management_domain: str,
    management_port: int,
    connector_domain: str,
    connector_port: int,
    hosts: Iterable[str],
    health_check: bool = False,
) -> dict:
    """Routers and services for both servers; ``name`` keeps them apart from other apps'.

    ``health_check`` adds Traefik TCP health checks, which Traefik before 3.5 does not know.
    """
    ordered = sorted(set(hosts))
    management_router, management_service = _route(
        f"{name}-management", management_domain, ordered, management_port, health_check
    )
    connector_router, connector_service = _route(
        f"{name}-connector", connector_domain, ordered, connector_port, health_check
    )
    return {
        "tcp": {
            "routers": {
                f"{name}-management": management_router,
                f"{name}-connector": connector_router,
            },
            "services": {
                f"{name}-management": management_service,
                f"{name}-connector": connector_service,
            },
        }
    }
