"""Enrolment through the Cluster Connector, as real MicroCloud clients do it."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import pytest
from cluster_manager import tokens
from cluster_manager.certificates import certificate_file_fingerprint
from cluster_manager.clusters import INVALID_JOIN
from cluster_manager.fleet import CertificateMismatchError, SimulatedCluster
from cluster_manager.fleet.cluster import JOIN_PATH
from cluster_manager.join_token import JoinToken
from connector_support import insecure_context, raw_cluster_request
from support import table_rows


def error_of(body: bytes) -> str:
    envelope = json.loads(body)
    assert envelope["type"] == "error", envelope
    return envelope["error"]


@pytest.fixture
async def token_for(pool, settings):
    async def create(name: str, **kwargs) -> str:
        token, _ = await tokens.create_token(pool, settings, name, **kwargs)
        return token.encode()

    return create


@pytest.mark.parametrize("hmac", [False, True], ids=["token-in-body", "hmac-signature"])
async def test_cluster_joins_and_its_token_is_consumed(server, pool, token_for, hmac):
    token = await token_for("edge-1", description="rack 4")
    cluster = SimulatedCluster("edge-1")

    status, body = await cluster.join(token, hmac=hmac)

    assert status == 200, body
    assert body == b""
    row = await pool.fetchrow("SELECT * FROM remote_clusters WHERE name = 'edge-1'")
    assert row["status"] == "ACTIVE"
    assert row["fingerprint"] == cluster.fingerprint
    assert row["description"] == "rack 4"
    assert row["certificate"] == cluster.identity.certificate_pem
    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_tokens") == 0


async def test_token_works_only_once(server, pool, token_for):
    token = await token_for("edge-1")
    await SimulatedCluster("a").join(token)
    before = await table_rows(pool)

    status, body = await SimulatedCluster("b").join(token, check=False)

    assert status == 403, body
    assert error_of(body) == INVALID_JOIN
    assert await table_rows(pool) == before


async def test_expired_token_is_refused_and_kept(server, pool, token_for):
    token = await token_for("edge-1")
    await pool.execute("UPDATE remote_cluster_tokens SET expires_at = now() - interval '1 s'")
    before = await table_rows(pool)

    status, body = await SimulatedCluster("edge-1").join(token, check=False)

    assert status == 403
    assert "expired" in error_of(body)
    assert await table_rows(pool) == before


def forged(token: str, **changes: str) -> str:
    body = json.loads(base64.b64decode(token))
    body.update(changes)
    return base64.b64encode(json.dumps(body).encode()).decode()


@pytest.mark.parametrize("hmac", [False, True], ids=["token-in-body", "hmac-signature"])
async def test_wrong_secret_is_refused(server, pool, token_for, hmac):
    token = forged(await token_for("edge-1"), secret="guessed-secret")
    before = await table_rows(pool)

    status, body = await SimulatedCluster("edge-1").join(token, hmac=hmac, check=False)

    assert status == 403
    assert error_of(body) == INVALID_JOIN
    assert await table_rows(pool) == before


async def test_unknown_cluster_name_is_refused(server, pool, token_for):
    token = forged(await token_for("edge-1"), server_name="edge-9")
    before = await table_rows(pool)

    status, body = await SimulatedCluster("edge-9").join(token, check=False)

    assert status == 403
    assert error_of(body) == INVALID_JOIN
    assert await table_rows(pool) == before


async def test_certificate_in_body_must_be_the_tls_client_certificate(server, pool, token_for):
    token = await token_for("edge-1")
    other = SimulatedCluster("other")
    before = await table_rows(pool)

    status, body = await SimulatedCluster("edge-1").join(
        token, certificate_pem=other.identity.certificate_pem, check=False
    )

    assert status == 403
    assert "presented over TLS" in error_of(body)
    assert await table_rows(pool) == before


async def test_enrolled_name_is_a_conflict(server, pool, token_for):
    await SimulatedCluster("x").join(await token_for("edge-1"))
    # A token for an enrolled name cannot be created; one left from before still cannot join.
    await pool.execute(
        "INSERT INTO remote_cluster_tokens (name, secret, expires_at) "
        "VALUES ('edge-1', 's', now() + interval '1 h')"
    )
    token = JoinToken.decode(await token_for("spare"))
    token = forged(token.encode(), server_name="edge-1", secret="s")
    before = await table_rows(pool)

    status, body = await SimulatedCluster("y").join(token, check=False)

    assert status == 409, body
    assert "already enrolled" in error_of(body)
    assert await table_rows(pool) == before


async def test_same_certificate_cannot_enrol_twice(server, pool, token_for):
    cluster = SimulatedCluster("a")
    await cluster.join(await token_for("edge-1"))
    twin = SimulatedCluster("b", identity=cluster.identity)
    token = await token_for("edge-2")
    before = await table_rows(pool)

    status, body = await twin.join(token, check=False)

    assert status == 409, body
    assert await table_rows(pool) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body: not valid JSON"),
        (b"[]", "body: expected object, got array"),
        (b'{"cluster_name": 7}', "cluster_name: expected str, got int"),
        (b'{"cluster_name": "edge-1", "cluster_certificate": "nope"}', "cluster_certificate"),
        (b'{"cluster_name": "' + b"x" * 100 + b'"}', "cluster_name: expected 1-63 letters"),
        (b'{"cluster_name": "edge-1"}', "cluster_certificate: required"),
    ],
)
async def test_malformed_join_is_refused_naming_the_problem(
    server, pool, token_for, body, message
):
    cluster = SimulatedCluster("edge-1")
    cluster.use_token(await token_for("edge-1"))
    before = await table_rows(pool)

    status, response = await cluster.request("POST", "/1.0/remote-cluster", body, check=False)

    assert status == 400, response
    assert message in error_of(response)
    assert await table_rows(pool) == before


@pytest.fixture
async def strict_joins(start_server, pool):
    """A server allowing 2 join attempts, then one a minute; and a token maker for it."""
    servers = await start_server(join_rate_per_minute=1, join_burst=2)

    async def token_for(name: str) -> JoinToken:
        token, _ = await tokens.create_token(pool, servers.settings, name)
        return token

    return token_for


async def test_guesses_are_throttled_per_client_certificate(strict_joins, pool):
    token = await strict_joins("edge-1")
    guesser = SimulatedCluster("guesser")
    guess = forged(token.encode(), secret="wrong")

    statuses = [(await guesser.join(guess, check=False))[0] for _ in range(3)]

    assert statuses == [403, 403, 429]
    assert await pool.fetchval("SELECT count(*) FROM remote_cluster_tokens") == 1


async def test_junk_joins_naming_a_pending_cluster_do_not_lock_it_out(strict_joins, pool):
    """Issue 13, hostile input 4: the per-name bucket used to be charged before any check."""
    token = await strict_joins("edge-1")
    for attacker in (SimulatedCluster(f"attacker-{n}") for n in range(3)):  # fresh identities
        attacker.use_token(token.encode())
        own = attacker.identity.certificate_pem
        for fields in (
            {"token": forged(token.encode(), secret="wrong"), "cluster_certificate": own},
            {"token": token.encode()[:-8] + "AAAAAAA=", "cluster_certificate": own},
            {"token": token.encode(), "cluster_certificate": "junk"},
        ):
            body = json.dumps({"cluster_name": "edge-1", **fields}).encode()
            status, answer = await attacker.request("POST", JOIN_PATH, body, check=False)
            assert status in (400, 403, 429), answer

    status, body = await SimulatedCluster("edge-1").join(token.encode(), check=False)

    assert status == 200, body
    assert await pool.fetchval("SELECT name FROM remote_clusters") == "edge-1"


async def test_join_errors_do_not_tell_pending_unknown_and_enrolled_names_apart(
    server, pool, token_for
):
    await SimulatedCluster("enrolled").join(await token_for("edge-enrolled"))
    pending = await token_for("edge-pending")
    before = await table_rows(pool)
    answers = set()
    for name in ("edge-pending", "edge-unknown", "edge-enrolled"):
        for hmac in (False, True):
            guess = forged(pending, server_name=name, secret="guessed")
            status, body = await SimulatedCluster("prober").join(guess, hmac=hmac, check=False)
            answers.add((status, error_of(body)))

    assert answers == {(403, INVALID_JOIN)}
    assert "cluster-manager token create" in INVALID_JOIN  # the operator learns what to do
    assert await table_rows(pool) == before


async def test_join_without_a_tls_client_certificate_is_refused(server, pool, token_for):
    """Issue 13, hostile input 11: the body's certificate was enrolled without proof."""
    token = await token_for("edge-1")
    cluster = SimulatedCluster("edge-1")
    body = json.dumps(
        {
            "cluster_name": "edge-1",
            "cluster_certificate": cluster.identity.certificate_pem,
            "token": token,
        }
    ).encode()
    before = await table_rows(pool)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.connector_port, ssl=insecure_context()
    )
    writer.write(
        b"POST /1.0/remote-cluster HTTP/1.1\r\nHost: remote\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()

    assert response.startswith(b"HTTP/1.1 403"), response[:200]
    assert b"must present the cluster certificate over TLS" in response
    assert await table_rows(pool) == before


async def test_join_answers_an_empty_200_and_closes_the_connection(server, pool, token_for):
    cluster = SimulatedCluster("edge-1")
    token = cluster.use_token(await token_for("edge-1"))
    body = json.dumps(
        {
            "cluster_name": "edge-1",
            "cluster_certificate": cluster.identity.certificate_pem,
            "token": cluster.token_text,
        }
    ).encode()

    status, headers, rest = await raw_cluster_request(cluster, "POST", JOIN_PATH, body)

    assert status == 200
    assert headers["connection"].lower() == "close"
    assert headers["content-length"] == "0"
    assert rest == b""
    assert token.server_name == await pool.fetchval("SELECT name FROM remote_clusters")


async def test_pinned_fingerprint_mismatch_is_a_hard_failure(server, token_for):
    token = forged(await token_for("edge-1"), fingerprint="00" * 32)

    with pytest.raises(CertificateMismatchError):
        await SimulatedCluster("edge-1").join(token)


async def test_token_lists_addresses_and_the_connector_certificate_fingerprint(
    settings, pool, token_for
):
    token = JoinToken.decode(await token_for("edge-1", expires_in=timedelta(hours=2)))

    assert token.server_name == "edge-1"
    assert token.addresses == settings.connector_addresses
    assert token.fingerprint == certificate_file_fingerprint(settings.connector_cert_file)
