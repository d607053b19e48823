"""What traefik-k8s does with a ``traefik_route`` requirer's application databag.

Read from canonical/traefik-k8s-operator (main, 8ab4a7e), for facts only:
- ``raw`` counts only if it is exactly ``"True"`` (lib/charms/traefik_k8s/v0/traefik_route.py:306);
- unless raw, every TCP (and HTTP) router gets a sibling ``<router>-tls`` with the same rule,
  the same service and the router's first entrypoint (``websecure`` if none), whose ``tls``
  block terminates TLS with Traefik's certificate (src/charm.py:1576-1614,
  src/traefik.py:663-693; ``tls`` is ``{}`` for a bare-IP external host);
- the resulting dynamic configuration goes to Traefik's file provider as is.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

RAW_TRUE = "True"


def dynamic_config(databag: dict[str, str]) -> dict[str, Any]:
    """The dynamic configuration traefik-k8s hands Traefik for this requirer databag."""
    config = copy.deepcopy(yaml.safe_load(databag["config"]))
    if databag.get("raw") != RAW_TRUE:
        for protocol in ("http", "tcp"):
            routers = config.get(protocol, {}).get("routers", {})
            for name, router in list(routers.items()):
                if not (router.get("rule") and router.get("service")):
                    continue
                entrypoints = router.get("entryPoints") or ["websecure"]
                routers[f"{name}-tls"] = {
                    "rule": router["rule"],
                    "service": router["service"],
                    "entryPoints": entrypoints[:1],
                    "tls": {},
                }
    return config
