"""Requirer side of the ``traefik_route`` interface.

The requirer hands Traefik a piece of its dynamic configuration (routers, services,
middlewares) and, rarely, static configuration (extra entrypoints). The provider, a
Traefik charm, merges it into its own configuration and answers where it is reachable.

Protocol (application databags):

- requirer: ``config`` — Traefik dynamic configuration as YAML; optionally ``static`` —
  static configuration as YAML; ``raw`` — exactly ``"True"`` asks the provider to use the
  configuration as given. Any other value (``"true"`` too) or none makes traefik-k8s add, for
  every router, a sibling ``<router>-tls`` with the same rule that terminates TLS with
  Traefik's own certificate, which breaks TLS passthrough.
- provider: ``external_host`` — the host name or address Traefik is reached on;
  ``scheme`` — ``http`` or ``https``.

Only the leader writes the requirer's application databag.

Usage::

    from charms.microcloud_cluster_manager_k8s.v0.traefik_route import TraefikRouteRequirer

    self.traefik_route = TraefikRouteRequirer(self, "traefik-route")
    self.framework.observe(self.traefik_route.on.ready, self._reconcile)
    ...
    if self.unit.is_leader():
        self.traefik_route.submit_to_traefik({"tcp": {...}})
"""

from __future__ import annotations

import logging
from typing import Any

import ops
import yaml

# The unique Charmhub library identifier, never change it.
LIBID = "a9ab5de147b84983891f24efcedac65c"

# Increment this major API version when introducing breaking changes.
LIBAPI = 0

# Increment this PATCH version before using `charmcraft publish-lib` or reset
# to 0 if you are raising the major API version.
LIBPATCH = 2

PYDEPS = ["ops>=2.17", "pyyaml"]

logger = logging.getLogger(__name__)

DEFAULT_RELATION_NAME = "traefik-route"
# The only value of ``raw`` traefik-k8s honours (it compares the string, case included).
RAW_TRUE = "True"


class TraefikRouteReadyEvent(ops.EventBase):
    """Traefik published (or changed) where it is reachable."""


class TraefikRouteRequirerEvents(ops.ObjectEvents):
    """Events of the requirer."""

    ready = ops.EventSource(TraefikRouteReadyEvent)


class TraefikRouteRequirer(ops.Object):
    """Send Traefik configuration over one ``traefik_route`` integration."""

    on = TraefikRouteRequirerEvents()  # pyright: ignore[reportAssignmentType]

    def __init__(self, charm: ops.CharmBase, relation_name: str = DEFAULT_RELATION_NAME):
        super().__init__(charm, relation_name)
        self._charm = charm
        self._relation_name = relation_name
        self.framework.observe(charm.on[relation_name].relation_changed, self._on_changed)

    @property
    def relation(self) -> ops.Relation | None:
        """The integration with Traefik, if there is one."""
        return self._charm.model.get_relation(self._relation_name)

    def _provider_data(self) -> ops.RelationDataContent | None:
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        return relation.data[relation.app]

    @property
    def external_host(self) -> str | None:
        """Where Traefik is reached, once the provider said so."""
        data = self._provider_data()
        return (data or {}).get("external_host") or None

    @property
    def scheme(self) -> str | None:
        """``http`` or ``https``, once the provider said so."""
        data = self._provider_data()
        return (data or {}).get("scheme") or None

    def is_ready(self) -> bool:
        """Whether Traefik published its external host."""
        return self.external_host is not None

    def _on_changed(self, _: ops.RelationChangedEvent) -> None:
        if self.is_ready():
            self.on.ready.emit()

    def submit_to_traefik(
        self,
        config: dict[str, Any],
        static: dict[str, Any] | None = None,
        raw: bool = False,
    ) -> bool:
        """Publish the configuration; only the leader may. Returns whether anything changed."""
        relation = self.relation
        if relation is None:
            raise RuntimeError(f"no {self._relation_name} integration to submit to")
        if not self._charm.unit.is_leader():
            raise RuntimeError("only the leader can submit Traefik configuration")
        wanted = {"config": yaml.safe_dump(config, sort_keys=True)}
        if static:
            wanted["static"] = yaml.safe_dump(static, sort_keys=True)
        if raw:
            wanted["raw"] = RAW_TRUE
        databag = relation.data[self._charm.app]
        changed = False
        for key in ("config", "static", "raw"):
            value = wanted.get(key)
            if databag.get(key) == value:
                continue
            changed = True
            if value is None:
                del databag[key]
            else:
                databag[key] = value
        if changed:
            logger.info("submitted Traefik configuration over relation %d", relation.id)
        return changed
