"""Databag readers and writers for the COS interfaces a workload charm speaks.

No PyPI package offers these sides, so this library holds them, written from the interface
specifications (canonical/charm-relation-interfaces) and the data the COS charms exchange.
Each function works on one ``ops.Relation``; the charm decides when to call it.

- ``prometheus_remote_write`` (requirer): every provider unit publishes ``remote_write`` =
  JSON ``{"url": ...}`` in its unit databag; :func:`remote_write_urls` collects them.
- ``prometheus_scrape`` (provider): the leader publishes ``scrape_jobs``, ``scrape_metadata``
  and ``alert_rules`` (JSON) in the application databag; every unit publishes
  ``prometheus_scrape_unit_address`` and ``prometheus_scrape_unit_name`` in its unit databag.
  A target ``*:PORT`` stands for every unit's address (:func:`publish_scrape_jobs`,
  :func:`publish_scrape_unit`).
- ``grafana_dashboard`` (provider): the leader publishes ``dashboards`` = JSON
  ``{"templates": {"file:NAME": {"charm", "content", "juju_topology", "inject_dropdowns"}}}``
  where ``content`` is the dashboard JSON compressed with LZMA and encoded in base64
  (:func:`publish_dashboards`).
- ``grafana_metadata`` (requirer): the provider's application databag holds ``grafana_uid``,
  ``direct_url`` (in-cluster; ``internal_url`` in older providers) and optionally
  ``ingress_url`` (:func:`grafana_metadata`).
- ``loki_push_api`` (requirer): every provider unit publishes ``endpoint`` = JSON
  ``{"url": ...}`` in its unit databag (:func:`loki_push_urls`).

Usage::

    from charms.microcloud_cluster_manager_k8s.v0 import cos_interfaces as cos

    urls = [url for rel in self.model.relations["send-remote-write"]
            for url in cos.remote_write_urls(rel)]
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import ops
from cosl import LZMABase64

# The unique Charmhub library identifier, never change it.
LIBID = "866284f5eafa4a45a937ecdf1427aaa6"

# Increment this major API version when introducing breaking changes.
LIBAPI = 0

# Increment this PATCH version before using `charmcraft publish-lib` or reset
# to 0 if you are raising the major API version.
LIBPATCH = 1

PYDEPS = ["cosl>=0.0.50"]

logger = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048


def _http_url(value: object) -> str | None:
    """``value`` if it is an http(s) URL of sane length, else None."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
        return None
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in value):
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return value


def _unit_json_urls(relation: ops.Relation, key: str) -> list[str]:
    """The ``url`` of the JSON object under ``key`` in every remote unit's databag, sorted."""
    urls = set()
    for unit in relation.units:
        raw = relation.data[unit].get(key)
        if not raw:
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            logger.warning("%s of %s in relation %d is not JSON", key, unit.name, relation.id)
            continue
        url = _http_url(value.get("url") if isinstance(value, dict) else None)
        if url is None:
            logger.warning("%s of %s in relation %d has no valid url", key, unit.name, relation.id)
            continue
        urls.add(url)
    return sorted(urls)


# prometheus_remote_write, requirer side.


def remote_write_urls(relation: ops.Relation) -> list[str]:
    """The remote-write URLs the provider's units publish."""
    return _unit_json_urls(relation, "remote_write")


# loki_push_api, requirer side.


def loki_push_urls(relation: ops.Relation) -> list[str]:
    """The Loki push API URLs the provider's units publish."""
    return _unit_json_urls(relation, "endpoint")


# grafana_metadata, requirer side.


@dataclasses.dataclass(frozen=True)
class GrafanaMetadata:
    """What a Grafana application says about itself."""

    grafana_uid: str
    ingress_url: str
    direct_url: str

    @property
    def url(self) -> str:
        """The URL people reach Grafana on: the ingress URL, else the in-cluster one."""
        return self.ingress_url or self.direct_url


def _plain(value: str | None) -> str | None:
    """A databag string, unwrapped if a provider wrote it JSON-encoded (``"..."``)."""
    if value and value.startswith('"'):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return None
        return decoded if isinstance(decoded, str) else None
    return value


def grafana_metadata(relation: ops.Relation) -> GrafanaMetadata | None:
    """The provider's Grafana metadata, or None until it published a usable URL."""
    if relation.app is None:
        return None
    data = relation.data[relation.app]
    ingress_url = _http_url(_plain(data.get("ingress_url"))) or ""
    direct_url = (
        _http_url(_plain(data.get("direct_url")))
        or _http_url(_plain(data.get("internal_url")))
        or ""
    )
    if not ingress_url and not direct_url:
        return None
    return GrafanaMetadata(
        grafana_uid=_plain(data.get("grafana_uid")) or "",
        ingress_url=ingress_url.rstrip("/"),
        direct_url=direct_url.rstrip("/"),
    )


# prometheus_scrape, provider side.


def topology(charm: ops.CharmBase) -> dict[str, str]:
    """The Juju topology COS labels this charm's telemetry with."""
    return {
        "model": charm.model.name,
        "model_uuid": charm.model.uuid,
        "application": charm.app.name,
        "unit": charm.unit.name,
        "charm_name": charm.meta.name,
    }


def _set(databag: ops.RelationDataContent, key: str, value: str) -> None:
    if databag.get(key) != value:
        databag[key] = value


def publish_scrape_jobs(
    relation: ops.Relation,
    app: ops.Application,
    jobs: Sequence[Mapping[str, Any]],
    metadata: Mapping[str, str],
    alert_rules: Mapping[str, Any],
) -> None:
    """Leader only: the scrape jobs, their topology and the alert rules."""
    databag = relation.data[app]
    _set(databag, "scrape_jobs", json.dumps(list(jobs), sort_keys=True))
    _set(databag, "scrape_metadata", json.dumps(dict(metadata), sort_keys=True))
    _set(databag, "alert_rules", json.dumps(dict(alert_rules), sort_keys=True))


def publish_scrape_unit(relation: ops.Relation, unit: ops.Unit, address: str) -> None:
    """Every unit: the address a ``*:PORT`` target stands for, and the unit's name."""
    databag = relation.data[unit]
    _set(databag, "prometheus_scrape_unit_address", address)
    _set(databag, "prometheus_scrape_unit_name", unit.name)


# grafana_dashboard, provider side.


def dashboard_templates(charm_name: str, dashboards: Mapping[str, str]) -> dict[str, Any]:
    """The ``dashboards`` value for dashboards given as name -> JSON text.

    Grafana adds the ``prometheusds`` and ``lokids`` datasource variables. Topology dropdowns
    and label injection are turned off: the dashboards show series that COS receives by remote
    write, which carry no Juju topology.
    """
    templates = {
        f"file:{name}": {
            "charm": charm_name,
            "content": LZMABase64.compress(content),
            "juju_topology": {},
            "inject_dropdowns": False,
        }
        for name, content in sorted(dashboards.items())
    }
    return {"templates": templates}


def publish_dashboards(
    relation: ops.Relation, app: ops.Application, charm_name: str, dashboards: Mapping[str, str]
) -> None:
    """Leader only: the dashboards, compressed, in the application databag."""
    databag = relation.data[app]
    # LZMA output is deterministic, so an unchanged dashboard leaves the databag unchanged.
    _set(
        databag,
        "dashboards",
        json.dumps(dashboard_templates(charm_name, dashboards), sort_keys=True),
    )
