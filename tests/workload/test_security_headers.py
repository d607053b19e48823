"""HSTS on the TLS servers; nosniff on every answer; no caching of JSON, token secrets included."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
from cluster_manager.fleet.client import probe_context
from cluster_manager.security_headers import HSTS


@pytest.fixture
def settings(make_settings, oidc_settings):
    """The server signs people in at the test identity provider."""
    return make_settings(**oidc_settings)


def assert_json_headers(response: aiohttp.ClientResponse) -> None:
    assert response.content_type == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


async def test_new_token_answer_with_its_secret_is_not_cached(admin_client):
    async with admin_client.post(
        "/1.0/remote-cluster-join-token", json={"cluster_name": "edge-1"}
    ) as response:
        body = await response.json()
    assert response.status == 200, body
    assert body["metadata"]["token"]  # the secret travels in this answer
    assert_json_headers(response)
    assert response.headers["Strict-Transport-Security"] == HSTS


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/1.0/remote-cluster", 200),
        ("/1.0/remote-cluster/nobody", 404),  # error envelopes too
        ("/1.0/configuration", 200),
    ],
)
async def test_management_json_answers_carry_the_headers(admin_client, path, status):
    async with admin_client.get(path) as response:
        await response.read()
    assert response.status == status
    assert_json_headers(response)
    assert response.headers["Strict-Transport-Security"] == HSTS


async def test_ui_pages_are_not_sniffed_and_tls_pins_to_https(server, settings):
    context = ssl.create_default_context(cafile=settings.management_cert_file)
    url = f"https://127.0.0.1:{server.management_port}/"
    async with aiohttp.ClientSession() as http, http.get(url, ssl=context) as response:
        await response.read()
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Strict-Transport-Security"] == HSTS


async def test_unauthenticated_refusal_carries_the_headers(server, settings):
    context = ssl.create_default_context(cafile=settings.management_cert_file)
    url = f"https://127.0.0.1:{server.management_port}/1.0/remote-cluster"
    async with aiohttp.ClientSession() as http, http.get(url, ssl=context) as response:
        await response.read()
    assert response.status == 401
    assert_json_headers(response)


async def test_connector_answers_carry_the_headers(server):
    url = f"https://127.0.0.1:{server.connector_port}/"
    async with aiohttp.ClientSession() as http, http.get(url, ssl=probe_context()) as response:
        await response.read()
    assert response.status == 200
    assert_json_headers(response)
    assert response.headers["Strict-Transport-Security"] == HSTS


async def test_ops_answers_carry_the_headers_but_no_hsts_over_plain_http(server):
    url = f"http://127.0.0.1:{server.ops_port}/health/ready"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        await response.read()
    assert response.status == 200
    assert_json_headers(response)
    assert "Strict-Transport-Security" not in response.headers
