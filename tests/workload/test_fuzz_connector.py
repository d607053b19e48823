"""Hostile input against a running Cluster Connector (real TLS, real PostgreSQL).

Hypothesis generates join and heartbeat bodies (raw bytes, JSON of any shape, the real payload
with values swapped for anything) and headers; every answer must be below 500, carry no stack
trace or file path, and a refused request must leave the database as it was. Then: guessing a
token's secret is throttled, and half-open connections neither starve a real client nor stay.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from typing import Any

import pytest
from cluster_manager import tokens
from cluster_manager.fleet import SimulatedCluster
from cluster_manager.fleet.cluster import JOIN_PATH, STATUS_PATH
from cluster_manager.join_token import JoinToken
from conftest import table_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Out of the way for the fuzzing (each example is one more request from the same cluster).
UNLIMITED = {
    "heartbeat_rate_per_minute": 1e6,
    "heartbeat_burst": 10**6,
    "join_rate_per_minute": 1e6,
    "join_burst": 10**6,
    "probe_rate_per_second": 1e6,
    "probe_burst": 10**6,
    "unverified_rate_per_second": 1e6,
    "unverified_burst": 10**6,
}
LEAK = re.compile(r"Traceback|File \"|(/[\w.-]+)+\.py\b|site-packages")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=20,
)
header_names = st.sampled_from(
    ["Authorization", "Content-Type", "Content-Encoding", "Transfer-Encoding", "Expect",
     "X-Forwarded-For", "Cookie", "Accept", "Connection", "Range"]
) | st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,30}\Z")  # fmt: skip
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80
) | st.sampled_from(
    ["ClusterManager-HMAC-1.0 " + "0" * 64, "ClusterManager-HMAC-1.0", "gzip", "chunked",
     "100-continue", "application/json; charset=utf-16", "text/plain"]
)  # fmt: skip
headers = st.dictionaries(header_names, header_values, max_size=3).filter(
    # The client writes Content-Length itself; a second one is a framing attack of its own.
    lambda h: not any(name.lower() == "content-length" for name in h)
)


def assert_clean(status: int, body: bytes) -> None:
    """No 5xx and nothing of the server's insides in the answer."""
    text = body.decode("utf-8", "replace")
    assert status < 500, f"{status}: {text[:2000]}"
    assert not LEAK.search(text), f"{status}: {text[:2000]}"


def assert_error_envelope(status: int, body: bytes) -> None:
    envelope = json.loads(body)
    assert envelope["type"] == "error", body
    assert envelope["error_code"] == status, body
    assert envelope["error"], body


@pytest.fixture
async def connector(start_server):
    return await start_server(**UNLIMITED)


@pytest.fixture
async def enrolled(connector, pool) -> SimulatedCluster:
    token, _ = await tokens.create_token(pool, connector.settings, "edge-enrolled")
    cluster = SimulatedCluster("edge-enrolled", metrics_bytes=512)
    await cluster.join(token.encode())
    status, body = await cluster.heartbeat()
    assert status == 200, body
    return cluster


@pytest.fixture
async def stranger(connector, pool) -> tuple[SimulatedCluster, str]:
    """A cluster that is not enrolled, holding a token for another name (kept pending)."""
    token, _ = await tokens.create_token(pool, connector.settings, "edge-pending")
    cluster = SimulatedCluster("edge-stranger")
    cluster.use_token(token.encode())
    return cluster, token.encode()


def join_bodies(token: str, certificate: str) -> st.SearchStrategy[bytes]:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "cluster_name": json_values | st.sampled_from(["edge-pending", "edge-stranger", ""]),
            "cluster_certificate": json_values | st.just(certificate),
            "token": json_values | st.just(token) | st.just(token[:-4] + "AAA="),
        },
    )
    valid = {"cluster_name": "edge-pending", "cluster_certificate": certificate, "token": token}
    fields = fields.filter(lambda f: f != valid)  # the one body that must succeed
    shapes = st.dictionaries(st.text(max_size=20), json_values, max_size=6) | fields
    return (
        st.binary(max_size=300)
        | json_values.map(lambda v: json.dumps(v).encode())
        | shapes.map(lambda v: json.dumps(v).encode())
    )


@FUZZ
@given(data=st.data())
async def test_fuzzed_joins_are_refused_cleanly_and_change_nothing(stranger, pool, data):
    cluster, token = stranger
    before = await table_rows(pool)
    body = data.draw(join_bodies(token, cluster.identity.certificate_pem), "body")
    extra = data.draw(headers, "headers")

    status, answer = await cluster.request("POST", JOIN_PATH, body, extra, check=False)

    assert_clean(status, answer)
    assert status != 200, answer  # never without the pending token's name and secret
    assert await table_rows(pool) == before


def heartbeat_bodies(cluster: SimulatedCluster) -> st.SearchStrategy[bytes]:
    real = cluster.status.next()
    keys = sorted(real)

    def mutate(changes: dict[str, Any], dropped: list[str]) -> bytes:
        payload = {k: v for k, v in real.items() if k not in dropped}
        payload.update(changes)
        return json.dumps(payload).encode()

    mutated = st.builds(
        mutate,
        st.dictionaries(st.sampled_from(keys) | st.text(max_size=10), json_values, max_size=3),
        st.lists(st.sampled_from(keys), max_size=3),
    )
    return mutated | st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())


@FUZZ
@given(data=st.data())
async def test_fuzzed_heartbeats_never_fail_the_server_and_refusals_change_nothing(
    enrolled, pool, data
):
    before = await table_rows(pool)
    body = data.draw(heartbeat_bodies(enrolled), "body")
    extra = data.draw(headers, "headers")

    status, answer = await enrolled.request("POST", STATUS_PATH, body, extra, check=False)

    assert_clean(status, answer)
    if status != 200:
        assert await table_rows(pool) == before


@pytest.mark.parametrize("expect", ["100-continue", "100-CONTINUE"])
async def test_heartbeat_sent_with_expect_continue_gets_its_200_after_the_interim_100(
    enrolled, pool, expect
):
    """Found by the fuzzing above (headers ``{'Expect': '100-CONTINUE'}``).

    aiohttp answers ``Expect: 100-continue`` (any case) with an interim ``100 Continue``, then
    the real answer; the test client took the 100 for the answer and the stored heartbeat for a
    refusal that changed rows. Clients now skip interim answers.
    """
    body = json.dumps(enrolled.status.next()).encode()

    status, answer = await enrolled.request(
        "POST", STATUS_PATH, body, {"Expect": expect}, check=False
    )

    assert (status, answer) == (200, b"")
    stored = await pool.fetchval(
        "SELECT count(*) FROM remote_cluster_details d JOIN remote_clusters c"
        " ON c.id = d.cluster_id WHERE c.name = $1 AND d.heartbeat_at IS NOT NULL",
        enrolled.name,
    )
    assert stored == 1


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=400))
async def test_bodies_of_well_formed_requests_get_json_errors(enrolled, body):
    status, answer = await enrolled.request("POST", STATUS_PATH, body, check=False)

    assert_clean(status, answer)
    if status != 200:
        assert_error_envelope(status, answer)


async def raw_exchange(port: int, request: bytes) -> bytes:
    """Send bytes on a TLS connection (no client certificate); return all that comes back."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(request)
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(10):
            return await reader.read()
    except (ConnectionError, ssl.SSLError):
        return b""
    finally:
        writer.close()


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    start=st.sampled_from([b"", b"POST /1.0/remote-cluster HTTP/1.1\r\n", b"GET / HTTP/1.1\r\n"]),
    rest=st.binary(max_size=300),
)
async def test_malformed_http_is_answered_without_5xx(connector, start, rest):
    answer = await raw_exchange(connector.connector_port, start + rest + b"\r\n\r\n")

    if answer:
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0
        assert 0 < status < 500, answer[:500]
        assert not LEAK.search(answer.decode("latin-1")), answer[:2000]


async def test_token_guessing_is_throttled_and_the_token_survives(server, settings, pool):
    real, _ = await tokens.create_token(pool, settings, "edge-target")
    guesser = SimulatedCluster("edge-guesser")
    statuses = []
    for attempt in range(settings.join_burst + 5):
        guess = JoinToken(
            secret=f"guess-{attempt}",
            expires_at=real.expires_at,
            addresses=real.addresses,
            server_name="edge-target",
            fingerprint=real.fingerprint,
        ).encode()
        status, body = await guesser.join(guess, check=False)
        assert_clean(status, body)
        statuses.append(status)

    assert statuses[: settings.join_burst] == [403] * settings.join_burst, statuses
    assert statuses[settings.join_burst :] == [429] * 5, statuses
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM remote_cluster_tokens WHERE name = 'edge-target'"
        )
        == 1
    )
    assert await pool.fetchval("SELECT count(*) FROM remote_clusters") == 0


async def half_open(port: int, kind: str) -> asyncio.StreamWriter:
    """A connection that never completes: no handshake, no end of headers, or a dribbled body."""
    if kind == "tcp":
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello
        return writer
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    if kind == "headers":
        writer.write(b"POST /1.0/remote-cluster/status HTTP/1.1\r\nHost: remote\r\n")
    else:
        writer.write(
            b"POST /1.0/remote-cluster HTTP/1.1\r\nHost: remote\r\n"
            b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"
        )
    return writer


async def closed_by_server(writer: asyncio.StreamWriter, within: float) -> bool:
    """Whether the server closes the connection before ``within`` seconds have passed."""
    transport = writer.transport
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if transport.is_closing():
            return True
        try:
            writer.write(b" ")  # dribble
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            return True
        await asyncio.sleep(0.25)
    return transport.is_closing()


async def test_half_open_connections_do_not_starve_the_connector_and_are_closed(
    start_server, pool
):
    servers = await start_server(connection_max_age=3.0, tls_handshake_timeout=3.0)
    port = servers.connector_port
    hostile = [
        await half_open(port, kind) for kind in ("tcp", "headers", "body") for _ in range(100)
    ]
    token, _ = await tokens.create_token(pool, servers.settings, "edge-real")
    cluster = SimulatedCluster("edge-real", timeout=5)
    started = time.monotonic()

    await cluster.join(token.encode())
    for _ in range(3):
        await cluster.heartbeat()
    served_in = time.monotonic() - started
    closed = await asyncio.gather(*(closed_by_server(w, within=8) for w in hostile))

    assert served_in < 5, served_in
    assert all(closed), f"{closed.count(False)} of {len(closed)} hostile connections stayed open"
    for writer in hostile:
        writer.close()
