"""Sign-in fixtures: a real OpenID provider (oidc-provider, tests/idp) and signed-in clients.

- ``idp``: the provider for the whole test session, over HTTPS with its own certificate
  (``idp.ca_file``). Users: ``admin``/``admin-password`` in group ``admins`` and
  ``alice``/``alice-password`` in group ``viewers``, ``oscar``/``oscar-password`` in group
  ``operators`` (claim ``mcm-idp-groups``).
- ``oidc_settings``: overrides for ``make_settings(**oidc_settings)``: a management port and
  URL, and a client registered at the provider for that URL.
- ``make_oidc_settings(provider=None, **client_metadata)``: the same with extra client
  metadata, e.g. ``token_endpoint_auth_method="none"`` (public client) or
  ``access_token_ttl=3``; ``provider`` another one from ``start_idp(...)``.
- ``start_idp(**config)``: another provider with changed configuration (tests/idp/server.mjs).
- ``signed_in(settings, user="admin")``: an aiohttp ClientSession signed in through the real
  code flow against the running server of ``settings``, with ``base_url`` set to the
  server and the ``X-CSRF-Token`` header sent on every request.

Example::

    @pytest.fixture
    def settings(make_settings, oidc_settings):
        return make_settings(**oidc_settings)

    async def test_something(server, settings, signed_in):
        client = await signed_in(settings)
        async with client.get("/1.0/configuration") as response:
            assert response.status == 200
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import ssl
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest
from cluster_manager.certificates import generate_self_signed
from cluster_manager.dev_idp import IdpProcess, ensure_installed
from cluster_manager.settings import Settings
from support import free_port

IDP_DIR = Path(__file__).parent / "idp"
USERS = {
    "admin": {
        "password": "admin-password",
        "name": "Ada Admin",
        "email": "ada@example.test",
        "groups": ["admins", "operators"],
    },
    "alice": {
        "password": "alice-password",
        "name": "Alice Viewer",
        "email": "alice@example.test",
        "groups": ["viewers"],
    },
    "oscar": {
        "password": "oscar-password",
        "name": "Oscar Operator",
        "email": "oscar@example.test",
        "groups": ["operators"],
    },
}


@dataclasses.dataclass
class TestIdp:
    """The running provider."""

    __test__ = False

    issuer: str
    ca_file: str
    registration_token: str
    process: IdpProcess

    def register_client(self, base_url: str, **metadata: Any) -> dict[str, Any]:
        """Register a client (RFC 7591) for a UI at ``base_url``; return its registration."""
        body = {
            "redirect_uris": [base_url + "/oidc/callback"],
            "post_logout_redirect_uris": [base_url + "/"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "cluster manager under test",
            **metadata,
        }
        request = urllib.request.Request(  # noqa: S310 - the test provider's https URL
            self.issuer + "/reg",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.registration_token}",
            },
        )
        context = ssl.create_default_context(cafile=self.ca_file)
        with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def stop(self) -> None:
        """Stop the provider."""
        self.process.stop()


def start_idp(**config: Any) -> TestIdp:
    """Start an oidc-provider over HTTPS on 127.0.0.1; stop it with .stop().

    Keywords change its configuration (tests/idp/server.mjs: port, ttl, clock_offset, users).
    """
    ensure_installed(IDP_DIR)
    directory = Path(tempfile.mkdtemp(prefix="mcm-test-idp-"))
    token = secrets.token_urlsafe(24)
    # A name of its own: a trust store holding two providers' certificates tells them apart.
    cert, key = generate_self_signed(f"mcm-test-idp-{directory.name}", ["127.0.0.1", "localhost"])
    (directory / "idp.crt").write_text(cert)
    (directory / "idp.key").write_text(key)
    values = {
        "host": "127.0.0.1",
        "port": 0,
        "tls": {"cert": str(directory / "idp.crt"), "key": str(directory / "idp.key")},
        "users": USERS,
        "registration_token": token,
        **config,
    }
    process = IdpProcess(IDP_DIR, values, directory / "config.json")
    issuer = process.start()
    return TestIdp(issuer, str(directory / "idp.crt"), token, process)


@pytest.fixture(scope="session")
def idp() -> Iterator[TestIdp]:
    """oidc-provider over HTTPS on 127.0.0.1 for the test session (npm ci on first use)."""
    provider = start_idp()
    yield provider
    provider.stop()


@pytest.fixture
def make_oidc_settings(idp: TestIdp) -> Callable[..., dict[str, Any]]:
    """Settings overrides for a server signing in at ``idp``; keywords: client metadata."""

    def make(provider: TestIdp | None = None, **client_metadata: Any) -> dict[str, Any]:
        provider = provider or idp
        port = free_port()
        base_url = f"https://127.0.0.1:{port}"
        client = provider.register_client(base_url, **client_metadata)
        return {
            "management_port": port,
            "management_url": base_url,
            "oidc_issuer": provider.issuer,
            "oidc_client_id": client["client_id"],
            "oidc_client_secret": client.get("client_secret", ""),
            "trusted_ca_file": provider.ca_file,
        }

    return make


@pytest.fixture
def oidc_settings(make_oidc_settings: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Overrides for make_settings: sign-in through ``idp`` with a confidential client."""
    return make_oidc_settings()


class _Forms(HTMLParser):
    """The forms of an HTML page: action, method and input values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "action": values.get("action", ""),
                    "id": values.get("id", ""),
                    "method": values.get("method", "get").lower(),
                    "inputs": {},
                }
            )
        elif tag in ("input", "button") and self.forms and values.get("name"):
            form = self.forms[-1]
            if values.get("form") and values["form"] != form["id"]:
                form = next(f for f in self.forms if f["id"] == values["form"])
            form["inputs"].setdefault(values["name"], values.get("value", ""))


def html_forms(html: str) -> list[dict[str, Any]]:
    """Parse the forms of a page."""
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def client_ssl(settings: Settings, idp: TestIdp) -> ssl.SSLContext:
    """Trust the management server's certificate and the provider's."""
    context = ssl.create_default_context(cafile=idp.ca_file)
    if settings.trusted_ca_file:
        context.load_verify_locations(cafile=settings.trusted_ca_file)
    context.load_verify_locations(cafile=settings.management_cert_file)
    return context


async def sign_in_flow(
    http: aiohttp.ClientSession, base_url: str, username: str, password: str
) -> aiohttp.ClientResponse:
    """Run the browser's part of the code flow; return the final response (after redirects)."""
    async with http.get(base_url + "/oidc/login") as page:
        html = await page.text()
        page_url = str(page.url)
        assert page.status == 200, f"{page.status} {page_url}: {html[:2000]}"
    form = html_forms(html)[0]
    fields = {**form["inputs"], "username": username, "password": password}
    async with http.post(urljoin(page_url, form["action"]), data=fields) as response:
        await response.read()
        return response


def new_browser(settings: Settings, idp: TestIdp) -> aiohttp.ClientSession:
    """A cookie-keeping client that trusts the server and the provider (no CSRF header yet)."""
    base_url = settings.management_url or f"https://127.0.0.1:{settings.management_port}"
    return aiohttp.ClientSession(
        base_url=base_url,
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(ssl=client_ssl(settings, idp)),
    )


def csrf_cookie(http: aiohttp.ClientSession) -> str:
    """The CSRF token the sign-in left in the cookie jar."""
    for cookie in http.cookie_jar:
        if cookie.key == "__Host-mcm_csrf":
            return cookie.value
    raise AssertionError("no CSRF cookie: sign-in did not complete")


@pytest.fixture
async def signed_in(
    idp: TestIdp,
) -> AsyncIterator[Callable[..., Awaitable[aiohttp.ClientSession]]]:
    """Factory of clients signed in through the real flow (for example as user admin)."""
    opened: list[aiohttp.ClientSession] = []

    async def sign_in(settings: Settings, user: str = "admin") -> aiohttp.ClientSession:
        http = new_browser(settings, idp)
        opened.append(http)
        base_url = str(http._base_url).rstrip("/")
        response = await sign_in_flow(http, base_url, user, USERS[user]["password"])
        assert response.history, "sign-in did not redirect back"
        http.headers["X-CSRF-Token"] = csrf_cookie(http)
        return http

    yield sign_in
    for http in opened:
        await http.close()


@pytest.fixture
async def admin_client(
    server: Any, settings: Settings, signed_in: Callable[..., Awaitable[aiohttp.ClientSession]]
) -> aiohttp.ClientSession:
    """A client signed in as ``admin`` (group admins) to ``server`` (settings: oidc_settings)."""
    return await signed_in(settings, "admin")


@pytest.fixture
async def user_client(
    server: Any, settings: Settings, signed_in: Callable[..., Awaitable[aiohttp.ClientSession]]
) -> aiohttp.ClientSession:
    """A client signed in as ``alice`` (not in the admin group) to ``server``."""
    return await signed_in(settings, "alice")
