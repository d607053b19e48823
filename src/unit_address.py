"""Where other units and Traefik reach a unit: its own DNS name, published to its peers.

Kubernetes gives each pod of the application's StatefulSet a stable name under the
``<app>-endpoints`` headless service, in whatever cluster domain the cluster uses; the pod
knows it as its fully qualified host name. Nothing here assumes ``cluster.local``.
"""

from __future__ import annotations

import re
import socket

# The key in a unit's peer databag that holds its address.
PEER_KEY = "address"

_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def fqdn() -> str:
    """This pod's fully qualified host name, as the pod's resolver knows it."""
    return socket.getfqdn()


def own_address(ingress_address: str | None) -> str | None:
    """This unit's stable name if it has one with a domain, else its ingress address."""
    name = fqdn()
    if "." in name and is_host(name):
        return name
    return ingress_address if ingress_address and is_host(ingress_address) else None


def is_host(value: object) -> bool:
    """Whether ``value`` is a plain DNS name or IPv4 address (what a peer may publish)."""
    return isinstance(value, str) and bool(_HOST.match(value))
