"""Enrolled clusters: the join, leaving, listing, showing and removing."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import asyncpg
import msgspec

from cluster_manager import validation
from cluster_manager.certificates import InvalidCertificateError, der_of, fingerprint, parse_pem
from cluster_manager.errors import BadRequest, Conflict, Forbidden, NotFound
from cluster_manager.fields import Bytes, Count, Description, Percent, Timestamp
from cluster_manager.fleet_settings import SETTINGS_JOIN_SQL, THRESHOLD_COLUMNS_SQL
from cluster_manager.join_token import InvalidTokenError, JoinToken

HMAC_SCHEME = "ClusterManager-HMAC-1.0"

SELECT_TOKEN_FOR_UPDATE = """
SELECT secret, description, expires_at FROM remote_cluster_tokens WHERE name = $1 FOR UPDATE
"""
SELECT_CLASH = "SELECT name FROM remote_clusters WHERE name = $1 OR fingerprint = $2"
INSERT_CLUSTER = """
INSERT INTO remote_clusters (name, description, certificate, fingerprint, status)
VALUES ($1, $2, $3, $4, 'ACTIVE')
RETURNING id, name, status, joined_at
"""
DELETE_TOKEN = "DELETE FROM remote_cluster_tokens WHERE name = $1"
DELETE_CLUSTER_BY_NAME = "DELETE FROM remote_clusters WHERE name = $1 RETURNING id"
DELETE_CLUSTER_BY_FINGERPRINT = "DELETE FROM remote_clusters WHERE fingerprint = $1 RETURNING name"
# One statement: every given field changes, or (unknown name) none does. A threshold whose
# flag ($5, $6) is true is set to $3/$4, where NULL means "follow the fleet default".
UPDATE_CLUSTER = """
UPDATE remote_clusters SET
    description = coalesce($2, description),
    disk_threshold = CASE WHEN $5 THEN $3 ELSE disk_threshold END,
    memory_threshold = CASE WHEN $6 THEN $4 ELSE memory_threshold END
WHERE name = $1
RETURNING id
"""

CLUSTER_COLUMNS = f"""
c.name, c.description, c.status, c.fingerprint, c.joined_at, c.last_status_update_at,
{THRESHOLD_COLUMNS_SQL},
d.cpu_total_count, d.cpu_load_1, d.cpu_load_5, d.cpu_load_15,
d.memory_total_amount, d.memory_usage, d.instance_count, d.member_count,
d.instance_statuses, d.member_statuses, d.ceph_statuses, d.storage_pool_usages,
d.server_metrics, d.ui_url
"""
SELECT_CLUSTERS = f"""
SELECT {CLUSTER_COLUMNS}
FROM remote_clusters c LEFT JOIN remote_cluster_details d ON d.cluster_id = c.id
{SETTINGS_JOIN_SQL}
ORDER BY c.name
"""  # noqa: S608 - constant column list
SELECT_CLUSTER = f"""
SELECT {CLUSTER_COLUMNS}
FROM remote_clusters c LEFT JOIN remote_cluster_details d ON d.cluster_id = c.id
{SETTINGS_JOIN_SQL}
WHERE c.name = $1
"""  # noqa: S608 - constant column list


Status = Literal["ACTIVE", "PENDING_APPROVAL"]
STATUSES: tuple[str, ...] = get_args(Status)
LoadAverage = Annotated[str, msgspec.Meta(description='e.g. "0.42"; empty before a heartbeat')]


OwnThreshold = Annotated[
    Percent | None, msgspec.Meta(description="the cluster's own threshold; null: fleet default")
]
ThresholdSource = Annotated[
    Literal["default", "cluster"],
    msgspec.Meta(description="default: the fleet-wide default; cluster: the cluster's own"),
]


class ClusterChanges(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a PATCH may change; a missing field stays as it is (all or nothing)."""

    description: Description | msgspec.UnsetType = msgspec.UNSET
    disk_threshold: OwnThreshold | msgspec.UnsetType = msgspec.UNSET
    memory_threshold: OwnThreshold | msgspec.UnsetType = msgspec.UNSET


EDITABLE_FIELDS: tuple[str, ...] = ClusterChanges.__struct_fields__


class StatusCount(msgspec.Struct):
    """How many instances, members or Ceph daemons are in one status."""

    status: str
    count: Count


class StoragePoolUsage(msgspec.Struct):
    """One storage pool's size and usage."""

    name: str
    member: Annotated[str, msgspec.Meta(description="empty for a shared (remote) pool")]
    total: Bytes
    usage: Bytes


class MemberMetricsSummary(msgspec.Struct):
    """How many bytes of metrics a member's service sent in the latest heartbeat."""

    member: str
    service: str
    metrics_bytes: Count


class EnrolledCluster(msgspec.Struct, kw_only=True):
    """A cluster with its latest heartbeat, with the upstream API model's field names."""

    name: str
    description: str
    status: Status
    fingerprint: Annotated[str, msgspec.Meta(description="SHA-256 of the certificate")]
    joined_at: Timestamp
    last_status_update_at: Timestamp | None
    disk_threshold: Annotated[Percent, msgspec.Meta(description="in effect for this cluster")]
    disk_threshold_source: ThresholdSource
    memory_threshold: Annotated[Percent, msgspec.Meta(description="in effect for this cluster")]
    memory_threshold_source: ThresholdSource
    instance_count: Count
    member_count: Count
    cpu_total_count: Count
    cpu_load_1: LoadAverage
    cpu_load_5: LoadAverage
    cpu_load_15: LoadAverage
    memory_total_amount: Bytes
    memory_usage: Bytes
    instance_statuses: list[StatusCount]
    member_statuses: list[StatusCount]
    ceph_statuses: list[StatusCount]
    storage_pool_usages: list[StoragePoolUsage]
    server_metrics: list[MemberMetricsSummary]
    ui_url: Annotated[str, msgspec.Meta(description="the cluster's LXD UI, or empty")]


def cluster_fields(row: asyncpg.Record) -> dict[str, Any]:
    """The fields of an EnrolledCluster from a row of CLUSTER_COLUMNS.

    The status lists are the JSON the heartbeat stored after validating it.
    """
    has_details = row["cpu_total_count"] is not None
    loads = {
        k: f"{row[k]:.2f}" if has_details else ""
        for k in ("cpu_load_1", "cpu_load_5", "cpu_load_15")
    }
    return dict(
        **loads,
        name=row["name"],
        description=row["description"],
        status=row["status"],
        fingerprint=row["fingerprint"],
        joined_at=row["joined_at"],
        last_status_update_at=row["last_status_update_at"],
        disk_threshold=row["disk_threshold"],
        memory_threshold=row["memory_threshold"],
        disk_threshold_source="cluster" if row["disk_threshold_own"] else "default",
        memory_threshold_source="cluster" if row["memory_threshold_own"] else "default",
        instance_count=row["instance_count"] or 0,
        member_count=row["member_count"] or 0,
        cpu_total_count=row["cpu_total_count"] or 0,
        memory_total_amount=row["memory_total_amount"] or 0,
        memory_usage=row["memory_usage"] or 0,
        instance_statuses=row["instance_statuses"] or [],
        member_statuses=row["member_statuses"] or [],
        ceph_statuses=row["ceph_statuses"] or [],
        storage_pool_usages=row["storage_pool_usages"] or [],
        server_metrics=row["server_metrics"] or [],
        ui_url=row["ui_url"] or "",
    )


# One answer, one status, for every join whose proof fails: an unknown name, a pending name with
# the wrong secret or signature, an enrolled name. A caller without the token learns nothing
# about which names exist; the operator is told what to do.
INVALID_JOIN = (
    "invalid join token: it is wrong, used, expired or revoked, or not for this cluster name; "
    "create a new one on the Cluster Manager (cluster-manager token create NAME) and join with it"
)


def _signature(authorization: str | None) -> str | None:
    """The hex digest of an HMAC-signed join, or None when the token is in the body."""
    if authorization is None:
        return None
    scheme, _, signature = authorization.partition(" ")
    signature = signature.strip().lower()
    if scheme != HMAC_SCHEME or len(signature) != 64:
        raise BadRequest(f"Authorization must be '{HMAC_SCHEME} <hex HMAC-SHA256 of the body>'")
    return signature


def _body_token(token_text: Any, name: str) -> JoinToken:
    try:
        token = JoinToken.decode(token_text)
    except InvalidTokenError as error:
        raise BadRequest(f"token: {error}") from None
    if token.server_name != name:
        raise BadRequest("token: it is for another cluster name than cluster_name")
    return token


def _proves_secret(
    stored_secret: str, signature: str | None, token: JoinToken | None, body: bytes
) -> bool:
    """Whether the request proves the secret: an HMAC of the body, or the token in the body."""
    if signature is not None:
        expected = hmac.new(stored_secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode())
    carried = token.secret if token is not None else ""
    return hmac.compare_digest(carried.encode(), stored_secret.encode())


async def join_cluster(
    pool: asyncpg.Pool,
    payload: dict[str, Any],
    body: bytes,
    authorization: str | None,
    peer_der: bytes | None,
    on_proof: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Enrol a cluster with its join token; the token is consumed in the same transaction.

    ``payload`` is the parsed ``body``; the raw bytes are what an HMAC signature covers.
    ``peer_der`` is the certificate presented over TLS: it must be the body's certificate.
    Everything that does not depend on stored state is checked first, with precise errors.
    Then a failed proof of the secret gets :data:`INVALID_JOIN`, whatever the name's state.
    ``on_proof(name)`` runs once the secret is proven (the per-name rate limit); it may raise.
    """
    name = validation.cluster_name(payload.get("cluster_name"))
    try:
        certificate = parse_pem(payload.get("cluster_certificate"))  # type: ignore[arg-type]
    except InvalidCertificateError as error:
        raise BadRequest(f"cluster_certificate: {error}") from None
    der = der_of(certificate)
    if peer_der is None:
        raise Forbidden("a join must present the cluster certificate over TLS")
    if peer_der != der:
        raise Forbidden("cluster_certificate is not the certificate presented over TLS")
    signature = _signature(authorization)
    token_text = payload.get("token")
    if signature is None and token_text is None:
        raise BadRequest("the join needs a token in the body or an HMAC signature")
    token = _body_token(token_text, name) if signature is None else None
    async with pool.acquire() as connection, connection.transaction():
        stored = await connection.fetchrow(SELECT_TOKEN_FOR_UPDATE, name)
        if stored is None or not _proves_secret(stored["secret"], signature, token, body):
            raise Forbidden(INVALID_JOIN)
        if on_proof is not None:
            on_proof(name)
        if stored["expires_at"] <= datetime.now(UTC):
            raise Forbidden("join token has expired: create a new one on the Cluster Manager")
        cert_fingerprint = fingerprint(der)
        if await connection.fetchval(SELECT_CLASH, name, cert_fingerprint):
            raise Conflict("a cluster with this name or certificate is already enrolled")
        pem = payload["cluster_certificate"]
        row = await connection.fetchrow(
            INSERT_CLUSTER, name, stored["description"], pem, cert_fingerprint
        )
        await connection.execute(DELETE_TOKEN, name)
    return {
        "name": row["name"],
        "status": row["status"],
        "joined_at": row["joined_at"].isoformat(),
    }


async def leave_cluster(pool: asyncpg.Pool, cert_fingerprint: str) -> str:
    """Remove the cluster that owns the certificate (the cluster leaves); return its name."""
    name = await pool.fetchval(DELETE_CLUSTER_BY_FINGERPRINT, cert_fingerprint)
    if name is None:
        raise Forbidden("unknown cluster certificate")
    return name


async def list_clusters(pool: asyncpg.Pool) -> list[EnrolledCluster]:
    """Every enrolled cluster with its latest heartbeat, by name."""
    return [EnrolledCluster(**cluster_fields(row)) for row in await pool.fetch(SELECT_CLUSTERS)]


async def get_cluster(pool: asyncpg.Pool, name: str) -> EnrolledCluster:
    """One cluster with its latest heartbeat; 404 if unknown."""
    row = await pool.fetchrow(SELECT_CLUSTER, name)
    if row is None:
        raise NotFound(f"no cluster named {name!r}")
    return EnrolledCluster(**cluster_fields(row))


async def remove_cluster(pool: asyncpg.Pool, name: str) -> None:
    """Remove a cluster; every process refuses its certificate from this moment on."""
    if await pool.fetchval(DELETE_CLUSTER_BY_NAME, name) is None:
        raise NotFound(f"no cluster named {name!r}")


async def update_cluster(pool: asyncpg.Pool, name: str, changes: ClusterChanges) -> None:
    """Change a cluster's description and thresholds (checked when decoded); 404 if unknown.

    One statement writes every given field.
    """
    given = msgspec.structs.asdict(changes)
    if all(value is msgspec.UNSET for value in given.values()):
        raise BadRequest(f"nothing to change: give any of {', '.join(EDITABLE_FIELDS)}")
    values = [None if given[f] is msgspec.UNSET else given[f] for f in EDITABLE_FIELDS]
    flags = [given[f] is not msgspec.UNSET for f in ("disk_threshold", "memory_threshold")]
    if await pool.fetchval(UPDATE_CLUSTER, name, *values, *flags) is None:
        raise NotFound(f"no cluster named {name!r}")
