"""Signing in to the Management API through a real OpenID provider (oidc-provider).

The server under test is the auth layer (setup_auth) on a small app with the /1.0 routes the
rules name, served over real TLS, on PostgreSQL (signed-out sessions live there); every token
is issued and signed by the provider.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import pytest
from aiohttp import web
from cluster_manager import mtls
from cluster_manager.db import pool_context
from cluster_manager.envelope import error_middleware, sync_response
from cluster_manager.management.auth import csrf_token, current_user, setup_auth
from cluster_manager.management.oidc import OidcClient, client_ssl_context
from cluster_manager.management.revocations import REVOKED, RevokedSessions
from cluster_manager.management.sessions import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Sealer,
    Session,
    load_key,
)
from cluster_manager.settings import Settings
from e2e_fixtures import wait_until as poll
from oidc_fixtures import (
    USERS,
    TestIdp,
    csrf_cookie,
    free_port,
    html_forms,
    new_browser,
    sign_in_flow,
    start_idp,
)

StartServer = Callable[..., Awaitable[Settings]]


async def configuration(request: web.Request) -> web.Response:
    user = current_user(request)
    return sync_response(
        {"user": dataclasses.asdict(user) if user else None, "csrf_token": csrf_token(request)}
    )


async def clusters(request: web.Request) -> web.Response:
    return sync_response([{"name": "c1"}])


async def change(request: web.Request) -> web.Response:
    return sync_response({"changed": True})


async def ui_root(request: web.Request) -> web.Response:
    return web.Response(text="UI root")


def auth_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app.cleanup_ctx.append(pool_context(settings, "ops"))
    setup_auth(app, settings)
    app.router.add_get("/1.0/configuration", configuration)
    app.router.add_get("/1.0/remote-cluster", clusters)
    app.router.add_post("/1.0/remote-cluster", change)
    app.router.add_get("/", ui_root)
    return app


@pytest.fixture
def apps() -> dict[int, web.Application]:
    """The apps start_server started, by management port."""
    return {}


@pytest.fixture
async def start_server(
    tls_dir: Path,
    database_dsn: str,
    apps: dict[int, web.Application],
    make_oidc_settings: Callable[..., dict[str, Any]],
) -> AsyncIterator[StartServer]:
    """Start the auth app over TLS; keywords: ``client`` metadata and settings overrides."""
    runners: list[web.AppRunner] = []

    async def start(client: dict[str, Any] | None = None, **overrides: Any) -> Settings:
        values = {
            "management_host": "127.0.0.1",
            "management_cert_file": str(tls_dir / "management.crt"),
            "management_key_file": str(tls_dir / "management.key"),
            "session_key_file": str(tls_dir / "session.key"),
            "database_dsn": database_dsn,
            **make_oidc_settings(**(client or {})),
            **overrides,
        }
        settings = Settings(**values)
        runner = web.AppRunner(auth_app(settings))
        await runner.setup()
        runners.append(runner)
        context = mtls.server_context(
            settings.management_cert_file, settings.management_key_file, request_client_cert=False
        )
        site = web.TCPSite(runner, "127.0.0.1", settings.management_port, ssl_context=context)
        await site.start()
        apps[settings.management_port] = runner.app
        return settings

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def browsers(idp: TestIdp) -> AsyncIterator[Callable[[Settings], aiohttp.ClientSession]]:
    opened: list[aiohttp.ClientSession] = []

    def browser(settings: Settings) -> aiohttp.ClientSession:
        http = new_browser(settings, idp)
        opened.append(http)
        return http

    yield browser
    for http in opened:
        await http.close()


def sealed_session(http: aiohttp.ClientSession, tls_dir: Path) -> Session:
    """Open the browser's session cookie with the servers' shared key."""
    sealer = Sealer(load_key(str(tls_dir / "session.key")), SESSION_COOKIE)
    value = next(c.value for c in http.cookie_jar if c.key == SESSION_COOKIE)
    payload = sealer.open(value)
    assert payload is not None
    session = Session.from_payload(payload)
    assert session is not None
    return session


async def sign_in(http: aiohttp.ClientSession, settings: Settings, user: str = "admin") -> str:
    """Sign in; return the body of the page the flow ends on."""
    response = await sign_in_flow(http, settings.management_url, user, USERS[user]["password"])
    body = await response.text()
    assert response.status == 200, f"{response.status} {response.url}: {body[:2000]}"
    http.headers["X-CSRF-Token"] = csrf_cookie(http)
    return body


async def envelope(response: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await response.text()
    assert response.content_type == "application/json", f"{response.status}: {body[:2000]}"
    return await response.json()


async def test_admin_signs_in_and_the_cookie_opens_the_api(start_server, browsers, idp):
    settings = await start_server()
    http = browsers(settings)
    async with http.get("/oidc/login", allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
        login_cookie = response.cookies[LOGIN_COOKIE]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(idp.issuer + "/auth?")
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [settings.management_url + "/oidc/callback"]
    assert query["state"][0]
    assert query["nonce"][0]
    assert query["code_challenge"][0]
    assert login_cookie["httponly"]
    assert login_cookie["secure"]
    assert login_cookie["samesite"] == "Lax"

    body = await sign_in(http, settings)

    assert body == "UI root"
    async with http.get("/1.0/configuration") as response:
        config = (await envelope(response))["metadata"]
    assert config["user"] == {
        "subject": "admin",
        "name": "Ada Admin",
        "email": "ada@example.test",
        "groups": ["admins", "operators"],
        "is_admin": True,
        "role": "admin",
    }
    assert config["csrf_token"] == csrf_cookie(http)
    async with http.get("/1.0/remote-cluster") as response:
        assert (await envelope(response))["metadata"] == [{"name": "c1"}]


async def test_session_cookie_is_httponly_secure_lax_and_bounded(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    response = await sign_in_flow(http, settings.management_url, "admin", "admin-password")
    callback = next(r for r in response.history if r.url.path == "/oidc/callback")
    cookie = callback.cookies[SESSION_COOKIE]
    assert cookie["httponly"]
    assert cookie["secure"]
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert 0 < int(cookie["max-age"]) <= settings.session_lifetime
    assert len(cookie.value) < 4000
    assert callback.cookies[LOGIN_COOKIE]["max-age"] == "0"  # the sign-in state is dropped
    assert "code=" not in str(response.url)  # the UI root, not the callback URL


async def test_public_client_without_secret_signs_in(start_server, browsers):
    settings = await start_server(client={"token_endpoint_auth_method": "none"})
    assert settings.oidc_client_secret == ""
    http = browsers(settings)
    await sign_in(http, settings)
    async with http.get("/1.0/remote-cluster") as response:
        assert response.status == 200, await response.text()


async def test_unauthenticated_api_calls_get_401_json_not_a_redirect(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    for method in ("GET", "POST"):
        async with http.request(method, "/1.0/remote-cluster", allow_redirects=False) as response:
            body = await envelope(response)
            assert response.status == 401
            assert body["error_code"] == 401
            assert "Not signed in" in body["error"]
    async with http.get("/1.0/configuration") as response:
        assert (await envelope(response))["metadata"] == {"user": None, "csrf_token": None}


async def test_user_outside_the_admin_group_gets_403_with_the_reason(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    await sign_in(http, settings, "alice")
    async with http.get("/1.0/remote-cluster") as response:
        body = await envelope(response)
    assert response.status == 403
    assert "'admins'" in body["error"]
    assert "'mcm-idp-groups'" in body["error"]
    assert "Alice Viewer" in body["error"]
    async with http.get("/1.0/configuration") as response:
        user = (await envelope(response))["metadata"]["user"]
    assert user["is_admin"] is False
    assert user["groups"] == ["viewers"]


async def test_state_change_needs_the_csrf_header(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    await sign_in(http, settings)
    token = http.headers.pop("X-CSRF-Token")
    async with http.post("/1.0/remote-cluster") as response:
        body = await envelope(response)
        assert response.status == 403
        assert "X-CSRF-Token" in body["error"]
    async with http.post("/1.0/remote-cluster", headers={"X-CSRF-Token": token[:-2] + "xx"}) as r:
        assert r.status == 403
    async with http.post("/1.0/remote-cluster", headers={"X-CSRF-Token": token}) as response:
        assert (await envelope(response))["metadata"] == {"changed": True}


async def test_tampered_session_cookie_gets_401_and_is_cleared(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    await sign_in(http, settings)
    value = next(c.value for c in http.cookie_jar if c.key == SESSION_COOKIE)
    middle = len(value) // 2
    forged = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
    http.cookie_jar.update_cookies({SESSION_COOKIE: forged}, http._base_url)
    async with http.get("/1.0/remote-cluster") as response:
        body = await envelope(response)
        assert response.status == 401
        assert "invalid or expired" in body["error"]
        assert response.cookies[SESSION_COOKIE]["max-age"] == "0"


@pytest.fixture
def late_clock_idp() -> Iterator[TestIdp]:
    """A provider whose clock is 15 minutes behind: its 5-minute ID tokens arrive expired."""
    provider = start_idp(clock_offset=-900, ttl={"IdToken": 300})
    yield provider
    provider.stop()


async def test_expired_id_token_is_refused(start_server, browsers, late_clock_idp):
    settings = await start_server(client={"provider": late_clock_idp})
    http = browsers(settings)
    response = await sign_in_flow(http, settings.management_url, "admin", "admin-password")
    body = await envelope(response)
    assert response.status == 401
    assert "expired" in body["error"]
    assert SESSION_COOKIE not in {c.key for c in http.cookie_jar}


def basic_auth(settings: Settings) -> str:
    pair = f"{settings.oidc_client_id}:{settings.oidc_client_secret}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def tamper(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **params})))


async def follow_and_sign_in(http: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    async with http.get(url) as page:
        html, page_url = await page.text(), str(page.url)
    form = html_forms(html)[0]
    fields = {**form["inputs"], "username": "admin", "password": "admin-password"}
    async with http.post(page_url.split("/interaction")[0] + form["action"], data=fields) as r:
        await r.read()
        return r


async def test_nonce_mismatch_is_refused(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    async with http.get("/oidc/login", allow_redirects=False) as response:
        location = response.headers["Location"]
    response = await follow_and_sign_in(http, tamper(location, nonce="injected-nonce"))
    body = await envelope(response)
    assert response.status == 401
    assert "nonce does not match" in body["error"]
    assert SESSION_COOKIE not in {c.key for c in http.cookie_jar}


async def test_state_mismatch_is_refused(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    async with http.get("/oidc/login", allow_redirects=False) as response:
        location = response.headers["Location"]
    response = await follow_and_sign_in(http, tamper(location, state="forged-state"))
    body = await envelope(response)
    assert response.status == 400
    assert "state does not match" in body["error"]
    assert SESSION_COOKIE not in {c.key for c in http.cookie_jar}


async def test_callback_without_sign_in_state_is_refused(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    async with http.get("/oidc/callback?code=abc&state=def") as response:
        body = await envelope(response)
    assert response.status == 400
    assert "open /oidc/login again" in body["error"]


async def test_id_token_for_another_client_is_refused(start_server, browsers, tls_dir):
    ours = await start_server()
    theirs = await start_server()
    http = browsers(theirs)
    await sign_in(http, theirs)
    foreign_token = sealed_session(http, tls_dir).id_token
    assert foreign_token

    connector = aiohttp.TCPConnector(ssl=client_ssl_context(ours.trusted_ca_file))
    async with aiohttp.ClientSession(connector=connector) as client_http:
        accepted = await OidcClient(theirs, client_http).validate_id_token(foreign_token, None)
        assert accepted["aud"] == theirs.oidc_client_id
        with pytest.raises(Exception, match="wrong audience"):
            await OidcClient(ours, client_http).validate_id_token(foreign_token, None)


async def test_expired_access_token_is_refreshed_transparently(start_server, browsers, tls_dir):
    # Access tokens of 3 s are always within the 5 s refresh margin: every call refreshes.
    # A public client: the provider rotates its refresh token at every use, which shows here.
    settings = await start_server(
        client={"access_token_ttl": 3, "token_endpoint_auth_method": "none"}
    )
    http = browsers(settings)
    await sign_in(http, settings)
    before = sealed_session(http, tls_dir)
    assert before.refresh_token

    async with http.get("/1.0/remote-cluster") as response:
        assert response.status == 200, await response.text()
        assert SESSION_COOKIE in response.cookies

    after = sealed_session(http, tls_dir)
    assert after.refresh_token != before.refresh_token  # the provider was asked
    assert after.access_expires_at >= before.access_expires_at
    assert (after.subject, after.csrf, after.expires_at) == (
        before.subject,
        before.csrf,
        before.expires_at,
    )
    async with http.get("/1.0/remote-cluster") as response:  # the refreshed cookie works
        assert response.status == 200, await response.text()


async def test_refused_refresh_ends_the_session(start_server, browsers, tls_dir, idp):
    settings = await start_server(client={"access_token_ttl": 3})
    http = browsers(settings)
    await sign_in(http, settings)
    session = sealed_session(http, tls_dir)
    # Revoke the refresh token at the provider, as an administrator there would.
    async with http.post(
        idp.issuer + "/token/revocation",
        data={"token": session.refresh_token},
        headers={"Authorization": basic_auth(settings)},
    ) as response:
        assert response.status == 200, await response.text()
    async with http.get("/1.0/remote-cluster") as response:
        body = await envelope(response)
    assert response.status == 401
    assert "sign in again" in body["error"]


async def test_logout_ends_the_session_here_and_at_the_provider(start_server, browsers, idp):
    settings = await start_server()
    http = browsers(settings)
    await sign_in(http, settings)

    async with http.post("/oidc/logout") as response:  # as the UI does, with X-CSRF-Token
        location = (await envelope(response))["metadata"]["redirect"]
        assert response.status == 200
        assert response.cookies[SESSION_COOKIE]["max-age"] == "0"
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(idp.issuer + "/session/end?")
    assert query["post_logout_redirect_uri"] == [settings.management_url + "/"]
    assert query["id_token_hint"][0].count(".") == 2

    async with http.get(location) as page:  # the provider asks for confirmation
        html, page_url = await page.text(), str(page.url)
    form = next(f for f in html_forms(html) if f["id"] == "op.logoutForm")
    async with http.post(
        page_url.split("/session")[0] + urlsplit(form["action"]).path,
        data={**form["inputs"], "logout": "yes"},
    ) as response:
        assert await response.text() == "UI root"
        assert str(response.url) == settings.management_url + "/"

    async with http.get("/1.0/remote-cluster") as response:
        assert response.status == 401
    async with http.get("/1.0/configuration") as response:
        assert (await envelope(response))["metadata"]["user"] is None
    # The provider's session is gone too: signing in asks for the password again.
    async with http.get("/oidc/login") as page:
        assert "password" in await page.text()
        assert "/interaction/" in page.url.path


async def test_session_works_on_another_unit_with_the_same_key(start_server, browsers):
    first = await start_server()
    # A second unit behind the same URL: same client, same session key, its own port.
    second = await start_server(
        oidc_client_id=first.oidc_client_id, oidc_client_secret=first.oidc_client_secret
    )
    http = browsers(first)
    await sign_in(http, first)
    # Cookies belong to the host, not the port: the jar sends them to the second unit too.
    async with http.get(f"https://127.0.0.1:{second.management_port}/1.0/remote-cluster") as r:
        assert r.status == 200, await r.text()


async def test_session_from_a_unit_with_another_key_is_refused(start_server, browsers, tmp_path):
    first = await start_server()
    other_key = tmp_path / "other.key"
    other_key.write_bytes(b"k" * 32)
    second = await start_server(session_key_file=str(other_key))
    http = browsers(first)
    await sign_in(http, first)
    async with http.get(f"https://127.0.0.1:{second.management_port}/1.0/remote-cluster") as r:
        assert r.status == 401


async def test_provider_down_at_start_answers_503_then_recovers(start_server, browsers, idp):
    port = free_port()
    settings = await start_server(oidc_issuer=f"https://127.0.0.1:{port}")
    http = browsers(settings)
    async with http.get("/oidc/login", allow_redirects=False) as response:
        body = await envelope(response)
        assert response.status == 503
        assert "cannot be reached" in body["error"]

    late = start_idp(port=port, tls=idp.process.config["tls"])
    try:
        async with http.get("/oidc/login", allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            assert response.headers["Location"].startswith(f"https://127.0.0.1:{port}/auth?")
    finally:
        late.stop()


def session_cookie(http: aiohttp.ClientSession) -> str:
    return next(c.value for c in http.cookie_jar if c.key == SESSION_COOKIE)


async def status_with_cookie(http: aiohttp.ClientSession, url: str, cookie: str) -> int:
    """GET ``url`` sending only the given session cookie, as a thief with a saved copy would."""
    async with http.get(url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}) as response:
        await response.read()
        return response.status


def wait_until(condition: Callable[[], bool]) -> Awaitable[None]:
    async def check() -> bool:
        return condition()

    return poll(check, within=10, every=0.05)


async def test_saved_cookie_stops_working_after_logout_on_every_unit(start_server, browsers, apps):
    first = await start_server()
    second = await start_server(  # another unit: same client, key and database, its own port
        oidc_client_id=first.oidc_client_id, oidc_client_secret=first.oidc_client_secret
    )
    revoked_on_second = apps[second.management_port][REVOKED]
    await wait_until(lambda: revoked_on_second.listening)
    http = browsers(first)
    await sign_in(http, first)
    saved = session_cookie(http)
    urls = [
        f"https://127.0.0.1:{unit.management_port}/1.0/remote-cluster" for unit in (first, second)
    ]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as thief:
        assert [await status_with_cookie(thief, url, saved) for url in urls] == [200, 200]

        async with http.post("/oidc/logout") as response:
            assert response.status == 200, await response.text()
        await wait_until(lambda: len(revoked_on_second) == 1)  # told by NOTIFY, not by a read

        assert [await status_with_cookie(thief, url, saved) for url in urls] == [401, 401]
        async with thief.get(urls[1], headers={"Cookie": f"{SESSION_COOKIE}={saved}"}) as r:
            assert "signed out" in (await envelope(r))["error"]
            assert r.cookies[SESSION_COOKIE]["max-age"] == "0"


async def test_signed_out_session_is_refused_by_a_unit_started_later(start_server, browsers):
    first = await start_server()
    http = browsers(first)
    await sign_in(http, first)
    saved = session_cookie(http)
    async with http.post("/oidc/logout") as response:
        assert response.status == 200

    later = await start_server(
        oidc_client_id=first.oidc_client_id, oidc_client_secret=first.oidc_client_secret
    )
    url = f"https://127.0.0.1:{later.management_port}/1.0/remote-cluster"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as thief:
        assert await status_with_cookie(thief, url, saved) == 401


async def test_logout_by_get_changes_nothing(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    await sign_in(http, settings)
    async with http.get("/oidc/logout", allow_redirects=False) as response:
        assert response.status == 405
        assert SESSION_COOKIE not in response.cookies
    async with http.get("/1.0/remote-cluster") as response:
        assert response.status == 200


async def test_cross_site_logout_is_refused(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    await sign_in(http, settings)
    token = http.headers.pop("X-CSRF-Token")
    attempts = [
        {"data": {"logout": "yes"}},  # a form on another site: no token
        {"data": {"csrf_token": "guessed"}},
        {"headers": {"X-CSRF-Token": token[:-2] + "xx"}},
        {"headers": {"X-CSRF-Token": token, "Origin": "https://evil.example"}},
    ]
    for attempt in attempts:
        async with http.post("/oidc/logout", allow_redirects=False, **attempt) as response:
            body = await envelope(response)
            assert response.status == 403, (attempt, body)
            assert SESSION_COOKIE not in response.cookies
    async with http.get("/1.0/remote-cluster") as response:
        assert response.status == 200  # still signed in


async def test_logout_form_with_the_token_redirects_to_the_provider(start_server, browsers, idp):
    settings = await start_server()
    http = browsers(settings)
    await sign_in(http, settings)
    token = http.headers.pop("X-CSRF-Token")
    async with http.post(
        "/oidc/logout",
        data={"csrf_token": token},
        headers={"Origin": settings.management_url},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        assert response.headers["Location"].startswith(idp.issuer + "/session/end?")
        assert response.cookies[SESSION_COOKIE]["max-age"] == "0"
    async with http.get("/1.0/remote-cluster") as response:
        assert response.status == 401


async def test_logout_without_a_session_only_clears_cookies(start_server, browsers):
    settings = await start_server()
    http = browsers(settings)
    async with http.post("/oidc/logout", allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/"


async def test_expired_revocations_are_pruned(pool):
    revoked = RevokedSessions(pool)
    await revoked.revoke("expired", time.time() - 1)
    await revoked.revoke("current", time.time() + 3600)
    assert len(revoked) == 2
    pruning = asyncio.create_task(revoked.prune_for_ever(interval=0.05))
    rows: list[str] = []
    try:
        for _ in range(200):
            rows = [r["session_id"] for r in await pool.fetch("SELECT * FROM revoked_sessions")]
            if rows == ["current"] and len(revoked) == 1:
                break
            await asyncio.sleep(0.05)
        assert rows == ["current"]
        assert len(revoked) == 1
        assert await revoked.is_revoked("current")
    finally:
        pruning.cancel()


async def test_without_its_listener_a_unit_reads_revocations_from_the_table(pool):
    elsewhere = RevokedSessions(pool)
    await elsewhere.revoke("signed-out", time.time() + 60)
    await elsewhere.revoke("long-expired", time.time() - 60)
    here = RevokedSessions(pool)  # its listener is not connected: its memory may miss some

    assert not here.listening
    assert await here.is_revoked("signed-out")
    assert not await here.is_revoked("long-expired")  # its cookie has expired anyway
    assert not await here.is_revoked("still-signed-in")
