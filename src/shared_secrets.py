"""Application secrets every unit needs: keys, connector identity, Management API TLS.

The keys are the session key (cookies) and the internal key (unit-to-unit channel).

The leader writes them into Juju application secrets and publishes their IDs and a
digest of their content in the peer relation's application databag; the digest changing
is what wakes the other units up (an owner's units get no ``secret-changed``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import ops

from connector_cert import (
    ConnectorIdentity,
    generate,
    names_of,
    needs_new_certificate,
    new_internal_key,
    new_session_key,
)

logger = logging.getLogger(__name__)

SHARED_LABEL = "cluster-manager-shared"
MANAGEMENT_TLS_LABEL = "cluster-manager-management-tls"

# Keys in the peer relation's application databag.
SHARED_ID_KEY = "shared-secret-id"
SHARED_DIGEST_KEY = "shared-secret-digest"
MANAGEMENT_TLS_ID_KEY = "management-tls-secret-id"
MANAGEMENT_TLS_DIGEST_KEY = "management-tls-secret-digest"


@dataclasses.dataclass(frozen=True)
class SharedSecrets:
    """Session key, unit-to-unit key and, once the connector domain is known, its identity."""

    session_key: str
    connector: ConnectorIdentity | None
    internal_key: str | None = None  # 64 hex characters; units authenticate each other


@dataclasses.dataclass(frozen=True)
class ManagementTls:
    """The Management API's certificate chain (leaf first) and private key, both PEM."""

    chain: str
    private_key: str

    @property
    def names(self) -> set[str]:
        """The names the leaf certificate is valid for."""
        return names_of(self.chain)


def _digest(content: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _shared_from(content: dict[str, str]) -> SharedSecrets | None:
    if not content.get("session-key"):
        return None
    connector = None
    if content.get("connector-certificate") and content.get("connector-private-key"):
        connector = ConnectorIdentity(
            certificate=content["connector-certificate"],
            private_key=content["connector-private-key"],
        )
    return SharedSecrets(
        session_key=content["session-key"],
        connector=connector,
        internal_key=content.get("internal-key") or None,
    )


def _shared_content(shared: SharedSecrets) -> dict[str, str]:
    content = {"session-key": shared.session_key}
    if shared.internal_key:
        content["internal-key"] = shared.internal_key
    if shared.connector:
        content["connector-certificate"] = shared.connector.certificate
        content["connector-private-key"] = shared.connector.private_key
    return content


class SecretStore:
    """Reads (every unit) and writes (the leader) the application secrets."""

    def __init__(self, model: ops.Model, peer_relation_name: str):
        self._model = model
        self._peer_relation_name = peer_relation_name

    @property
    def _peer_data(self) -> ops.RelationDataContent | None:
        relation = self._model.get_relation(self._peer_relation_name)
        return relation.data[self._model.app] if relation else None

    def _content(self, id_key: str, label: str) -> dict[str, str]:
        """The latest content of one application secret, or nothing."""
        peer = self._peer_data
        secret_id = peer.get(id_key) if peer is not None else None
        try:
            if secret_id:
                secret = self._model.get_secret(id=secret_id)
            elif self._model.unit.is_leader():
                secret = self._model.get_secret(label=label)
            else:
                return {}
            return secret.get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            return {}

    def shared(self) -> SharedSecrets | None:
        """The session key and connector identity, once the leader created them."""
        return _shared_from(self._content(SHARED_ID_KEY, SHARED_LABEL))

    def management_tls(self) -> ManagementTls | None:
        """The Management API certificate and key, once the leader shared them."""
        content = self._content(MANAGEMENT_TLS_ID_KEY, MANAGEMENT_TLS_LABEL)
        if not content.get("chain") or not content.get("private-key"):
            return None
        return ManagementTls(chain=content["chain"], private_key=content["private-key"])

    def _write(self, label: str, id_key: str, digest_key: str, content: dict[str, str]) -> None:
        """Leader only: create or update one application secret and announce it to peers."""
        try:
            secret = self._model.get_secret(label=label)
            if secret.get_content(refresh=True) != content:
                secret.set_content(content)
        except ops.SecretNotFoundError:
            secret = self._model.app.add_secret(content, label=label)
        peer = self._peer_data
        if peer is not None:
            peer[id_key] = secret.get_info().id
            peer[digest_key] = _digest(content)

    def ensure_shared(self, connector_names: list[str]) -> SharedSecrets:
        """Leader only: make the session key once, and the connector identity for these names.

        The connector certificate is kept as long as it carries exactly these names; only a
        changed name set makes a new one, which every enrolled cluster will refuse.
        """
        current = _shared_from(self._content(SHARED_ID_KEY, SHARED_LABEL))
        session_key = current.session_key if current else new_session_key()
        connector = current.connector if current else None
        # Made once; secrets written before the key existed get it on the next reconcile.
        internal_key = (current.internal_key if current else None) or new_internal_key()
        if connector_names and needs_new_certificate(connector, connector_names):
            if connector is not None:
                logger.warning(
                    "connector certificate names change from %s to %s: enrolled clusters "
                    "pinned the old certificate and must be enrolled again",
                    sorted(names_of(connector.certificate)),
                    sorted(connector_names),
                )
            connector = generate(connector_names)
        shared = SharedSecrets(
            session_key=session_key, connector=connector, internal_key=internal_key
        )
        self._write(SHARED_LABEL, SHARED_ID_KEY, SHARED_DIGEST_KEY, _shared_content(shared))
        return shared

    def publish_management_tls(self, tls: ManagementTls) -> None:
        """Leader only: share the Management API certificate and key with every unit."""
        self._write(
            MANAGEMENT_TLS_LABEL,
            MANAGEMENT_TLS_ID_KEY,
            MANAGEMENT_TLS_DIGEST_KEY,
            {"chain": tls.chain, "private-key": tls.private_key},
        )
