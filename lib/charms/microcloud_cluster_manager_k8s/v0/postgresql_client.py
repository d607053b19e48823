"""Requirer side of the ``postgresql_client`` interface, in the v0 form postgresql-k8s speaks.

postgresql-k8s (14 and 16) acts on the v0 protocol of the data-platform libraries. Written
from that protocol as the provider reads and writes it; no code of those libraries is used.

Protocol (application databags, all values strings):

- requirer (leader): ``database`` — the database to create, the key whose *arrival* makes
  the provider act; optionally ``extra-user-roles``; ``requested-secrets`` — a JSON list of
  the fields the provider should put in Juju secrets instead of the databag.
- provider: ``endpoints`` ("host:port[,host:port]", the primary first), ``database``,
  ``version`` (the *server* version, e.g. ``14.15``), ``tls`` (``"True"``/``"False"``),
  and the credentials either as plain ``username``/``password`` fields or in a Juju secret
  whose URI is under ``secret-user`` (content keys ``username``, ``password``, ``uris``);
  TLS material likewise plain or under ``secret-tls`` (``tls``, ``tls-ca``).

:func:`request` writes the request; :func:`read_answer` reads the answer and never raises
on what the provider wrote: it returns a :class:`Problem` saying what is missing or wrong.

Usage::

    from charms.microcloud_cluster_manager_k8s.v0 import postgresql_client as pg

    if self.unit.is_leader():
        pg.request(relation, self.app, "my_database")
    answer = pg.read_answer(self.model, relation, "my_database")
    if isinstance(answer, pg.Problem): ...
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import ops

# The unique Charmhub library identifier, never change it.
LIBID = "0c7d1d4b6a2f4f0e9d3c5a8b7e6f1a20"

# Increment this major API version when introducing breaking changes.
LIBAPI = 0

# Increment this PATCH version before using `charmcraft publish-lib` or reset
# to 0 if you are raising the major API version.
LIBPATCH = 1

PYDEPS = ["ops>=2.17"]

logger = logging.getLogger(__name__)

# Fields the requirer asks the provider to keep in Juju secrets rather than the databag.
REQUESTED_SECRETS = ("username", "password", "tls", "tls-ca", "uris")
USER_SECRET_FIELD = "secret-user"
TLS_SECRET_FIELD = "secret-tls"

MAX_FIELD = 4096
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A usable answer: where the database is and how to log in."""

    endpoints: tuple[str, ...]  # "host:port", the primary first
    username: str
    password: str
    database: str
    version: str = ""  # the server version the provider reported, for information only
    tls: bool = False
    tls_ca: str = ""


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why there are no credentials yet; ``blocked`` when waiting will not help."""

    message: str
    blocked: bool = False


def request(
    relation: ops.Relation,
    app: ops.Application,
    database: str,
    extra_user_roles: str = "",
) -> bool:
    """Leader only: ask for ``database``; returns whether the databag changed.

    Idempotent: the provider acts when ``database`` first appears, so the value is never
    rewritten once it is there (postgresql-k8s refuses changed roles, too).
    """
    if not _DATABASE_NAME.match(database):
        raise ValueError(f"invalid database name {database!r}")
    databag = relation.data[app]
    wanted = {
        "requested-secrets": json.dumps(list(REQUESTED_SECRETS)),
        "database": database,
    }
    if extra_user_roles:
        wanted["extra-user-roles"] = extra_user_roles
    changed = False
    # The v1 form (``version: v1``, ``requests``) is read by no provider named here; drop it.
    if databag.get("version") == "v1":
        del databag["version"]
        changed = True
    if "requests" in databag:
        del databag["requests"]
        changed = True
    for key, value in wanted.items():
        if key in databag:
            continue
        databag[key] = value
        changed = True
    if changed:
        logger.info("requested database %s over relation %d", database, relation.id)
    return changed


def _text(value: object) -> str | None:
    """A field value if it is a sane string, else None."""
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        return None
    if any(ord(char) < 0x20 and char not in "\n\r\t" for char in value):
        return None
    return value


def _endpoints(value: str) -> tuple[str, ...] | None:
    endpoints = []
    for item in value.split(","):
        host, separator, port = item.strip().rpartition(":")
        if not separator or not _HOST.match(host) or not port.isdigit():
            return None
        if not 0 < int(port) < 65536:
            return None
        endpoints.append(f"{host}:{int(port)}")
    return tuple(endpoints) or None


def _secret_content(model: ops.Model, uri: str) -> dict[str, str] | None:
    try:
        return model.get_secret(id=uri).get_content(refresh=True)
    except (ops.SecretNotFoundError, ops.ModelError) as error:
        logger.warning("cannot read database secret %s: %s", uri, type(error).__name__)
        return None


def _fields(
    model: ops.Model, data: ops.RelationDataContent, secret_field: str, keys: tuple[str, ...]
) -> dict[str, str] | Problem:
    """``keys`` from the secret under ``secret_field`` if there is one, else the databag."""
    uri = data.get(secret_field)
    if not uri:
        return {key: data[key] for key in keys if key in data}
    if not uri.startswith("secret:") or len(uri) > MAX_FIELD:
        return Problem(f"database answer: {secret_field} is not a secret URI", blocked=True)
    content = _secret_content(model, uri)
    if content is None:
        return Problem(f"database answer: cannot read the {secret_field} secret", blocked=True)
    return {key: content[key] for key in keys if key in content}


def read_answer(model: ops.Model, relation: ops.Relation, database: str) -> Credentials | Problem:
    """The provider's answer on ``relation``, or the problem that stops using it."""
    if relation.app is None:
        return Problem("waiting for the database provider")
    try:
        data = relation.data[relation.app]
        user = _fields(model, data, USER_SECRET_FIELD, ("username", "password"))
        tls = _fields(model, data, TLS_SECRET_FIELD, ("tls", "tls-ca"))
        raw_endpoints = data.get("endpoints")
        answered_database = data.get("database")
        version = data.get("version", "")
    except ops.ModelError as error:
        return Problem(f"database answer unreadable: {type(error).__name__}")
    if isinstance(user, Problem):
        return user
    if not raw_endpoints and not user:
        return Problem(f"waiting for {relation.app.name} to create the database")
    if not raw_endpoints:
        return Problem(f"waiting for {relation.app.name} to publish its endpoints")
    endpoints = _endpoints(raw_endpoints) if _text(raw_endpoints) else None
    if endpoints is None:
        return Problem("database answer: endpoints are not host:port", blocked=True)
    if "username" not in user or "password" not in user:
        return Problem(f"waiting for {relation.app.name} to share the credentials")
    username, password = _text(user["username"]), _text(user["password"])
    if username is None or password is None:
        return Problem("database answer: username or password is malformed", blocked=True)
    if answered_database and answered_database != database:
        return Problem(
            f"database answer: database {answered_database[:64]!r} is not {database!r}",
            blocked=True,
        )
    tls_fields = {} if isinstance(tls, Problem) else tls
    return Credentials(
        endpoints=endpoints,
        username=username,
        password=password,
        database=database,
        version=(_text(version) or "")[:32],
        tls=tls_fields.get("tls") == "True",
        tls_ca=_text(tls_fields.get("tls-ca")) or "",
    )
