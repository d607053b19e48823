"""What credentials reach a cluster's LXD through its tunnel: the signed-in user's own token.

The simulated LXD here trusts the test identity provider as ``lxc config set oidc.issuer=...``
makes a real LXD do (:mod:`cluster_manager.fleet.lxd_oidc`: canonical/lxd a83edf2a
``lxd/auth/oidc/oidc.go`` lines 121-172, checking the bearer token at the provider's userinfo
endpoint; ``lxd/daemon.go`` lines 868-883 and 910-922, 401 for a refused token and 403
``Forbidden`` without credentials). The daemon passes on the frame's ``Authorization`` and
``Cookie`` only (canonical/microcloud f26e73c0 ``cmd/microcloudd/cluster_manager_tunnel.go``
lines 251-252). Real sign-in, real TLS, real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp
import pytest
from cluster_manager.fleet.lxd import InMemoryLXD, Instance
from cluster_manager.fleet.lxd_oidc import LxdOidc
from cluster_manager.management.sessions import (
    MAX_COOKIE_CHARS,
    SESSION_COOKIE,
    Sealer,
    Session,
    load_key,
    seal_whole,
)
from conftest import free_port
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from oidc_fixtures import USERS, csrf_cookie, new_browser, sign_in_flow, start_idp
from support import write_config

ROLE_GROUPS = {"oidc_operator_group": "operators", "oidc_viewer_group": "viewers"}


def sample_lxd() -> InMemoryLXD:
    return InMemoryLXD(
        [
            Instance("web", "Running", "container", "m1"),
            Instance("db", "Stopped", "virtual-machine", "m2"),
        ]
    )


@pytest.fixture
def settings(make_settings, oidc_settings, tmp_path):
    key = tmp_path / "internal.key"
    key.write_text(os.urandom(32).hex())
    return make_settings(
        **oidc_settings,
        **ROLE_GROUPS,
        internal_key_file=str(key),
        internal_port=free_port(),
    )


@pytest.fixture
def lxd_oidc(idp) -> LxdOidc:
    return LxdOidc(idp.issuer, idp.ca_file)


@pytest.fixture
async def tunnel(server, enrolled, open_tunnel, lxd_oidc):
    cluster = await enrolled(server, "edge-1")
    return await open_tunnel(cluster, lxd=sample_lxd(), lxd_oidc=lxd_oidc)


def sealed_session(http: aiohttp.ClientSession, settings) -> Session:
    """Open the browser's session cookie with the servers' key (as any unit does)."""
    sealer = Sealer(load_key(settings.session_key_file), SESSION_COOKIE)
    value = next(c.value for c in http.cookie_jar if c.key == SESSION_COOKIE)
    payload = sealer.open(value)
    assert payload is not None
    session = Session.from_payload(payload)
    assert session is not None
    return session


class Seen:
    """Everything the browser received: bodies, headers and cookies other than the sealed one."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    async def call(
        self, http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
    ) -> tuple[int, Any]:
        async with http.request(method, path, **kwargs) as response:
            text = await response.text()
            self.parts.append(text)
            self.parts.extend(f"{k}: {v}" for k, v in response.headers.items())
            return response.status, (json.loads(text) if text.startswith("{") else text)

    def browser_state(self, http: aiohttp.ClientSession) -> None:
        self.parts.extend(c.value for c in http.cookie_jar if c.key != SESSION_COOKIE)

    def holds(self, secret: str) -> bool:
        return any(secret in part for part in self.parts)


async def test_admin_lists_and_stops_an_instance_as_themself(
    settings, signed_in, tunnel, lxd_oidc, pool
):
    admin = await signed_in(settings, "admin")
    seen = Seen()

    status, listed = await seen.call(admin, "GET", "/1.0/remote-cluster/edge-1/instances")
    assert status == 200, listed
    assert [i["name"] for i in listed["metadata"]["instances"]] == ["web", "db"]
    status, changed = await seen.call(
        admin,
        "PUT",
        "/1.0/remote-cluster/edge-1/instances/web/state",
        json={"action": "stop", "force": True},
    )

    assert status == 200, changed
    assert changed["metadata"]["result"] == "success"
    assert tunnel.lxd.instances["web"].status == "Stopped"
    # The list, the state change and the wait for its operation: each as the admin.
    assert lxd_oidc.subjects == ["admin", "admin", "admin"]
    session = sealed_session(admin, settings)
    token = session.access_token
    assert token
    assert not session.tokens_stored  # the test provider's tokens fit in the cookie
    cookie = next(c.value for c in admin.cookie_jar if c.key == SESSION_COOKIE)
    print("test provider: access token", len(token), "characters, session cookie", len(cookie))
    assert lxd_oidc.tokens == [token] * 3
    assert tunnel.authorizations == ["Bearer " + token] * 3
    assert tunnel.cookies == ["", "", ""]
    row = await pool.fetchrow("SELECT subject, method, status FROM audit_log WHERE method = 'PUT'")
    assert tuple(row) == ("admin", "PUT", 202)
    # The token never reached the browser (only inside the sealed session cookie).
    await seen.call(admin, "GET", "/1.0/configuration")
    seen.browser_state(admin)
    assert not seen.holds(token)


async def test_each_user_reaches_lxd_with_their_own_token(settings, signed_in, tunnel, lxd_oidc):
    operator = await signed_in(settings, "oscar")
    viewer = await signed_in(settings, "alice")

    async with operator.get("/1.0/remote-cluster/edge-1/members") as response:
        assert response.status == 200, await response.text()
    async with viewer.get("/1.0/remote-cluster/edge-1/warnings") as response:
        assert response.status == 200, await response.text()
    async with viewer.get("/1.0/instances?name=web") as response:  # the fleet search
        found = await response.json()
        assert response.status == 200, found

    assert [i["name"] for i in found["metadata"]["instances"]] == ["web"]
    assert lxd_oidc.subjects == ["oscar", "alice", "alice"]
    assert lxd_oidc.tokens[0] == sealed_session(operator, settings).access_token
    assert lxd_oidc.tokens[1] == sealed_session(viewer, settings).access_token


async def test_a_header_the_browser_sends_is_never_passed_on(
    settings, signed_in, tunnel, lxd_oidc
):
    admin = await signed_in(settings, "admin")
    forged = {"Authorization": "Bearer forged-by-the-page", "X-CSRF-Token": ""}
    origin = str(admin._base_url).rstrip("/")

    async with admin.get(
        "/1.0/remote-cluster/edge-1/lxd/instances", headers=forged
    ) as response:  # the pass-through
        assert response.status == 200, await response.text()
    async with admin.get("/lxd-ui/edge-1/1.0/instances", headers=forged) as response:
        assert response.status == 200, await response.text()
    async with admin.put(
        "/lxd-ui/edge-1/1.0/instances/db/state",
        json={"action": "start", "timeout": 30},
        headers={**forged, "Origin": origin},
    ) as response:  # the LXD UI's own calls
        assert response.status == 202, await response.text()
    async with admin.post(
        "/1.0/instances/bulk/state",
        json={"action": "restart", "instances": [{"cluster": "edge-1", "instance": "web"}]},
        headers={"Authorization": "Bearer forged-by-the-page"},
    ) as response:
        bulk = await response.json()
        assert response.status == 200, bulk

    assert bulk["metadata"]["succeeded"] == 1
    token = sealed_session(admin, settings).access_token
    assert set(tunnel.authorizations) == {"Bearer " + token}
    assert "forged-by-the-page" not in lxd_oidc.tokens
    assert set(tunnel.cookies) == {""}  # the browser's cookies (its session) stay here
    assert tunnel.lxd.instances["db"].status == "Running"
    assert set(lxd_oidc.subjects) == {"admin"}


async def test_an_expired_access_token_is_refreshed_before_the_call(
    make_settings, make_oidc_settings, start_server, enrolled, open_tunnel, signed_in, lxd_oidc
):
    # Three seconds of life: within the refresh margin, so every request refreshes first.
    oidc = make_oidc_settings(access_token_ttl=3, token_endpoint_auth_method="none")
    servers = await start_server(**oidc, **ROLE_GROUPS)
    cluster = await enrolled(servers, "edge-1")
    tunnel = await open_tunnel(cluster, lxd=sample_lxd(), lxd_oidc=lxd_oidc)
    admin = await signed_in(servers.settings, "admin")
    at_sign_in = sealed_session(admin, servers.settings)

    async with admin.get("/1.0/remote-cluster/edge-1/instances") as response:
        assert response.status == 200, await response.text()
        assert SESSION_COOKIE in response.cookies  # the refreshed session goes back

    refreshed = sealed_session(admin, servers.settings)
    assert refreshed.access_token
    assert refreshed.access_token != at_sign_in.access_token
    assert refreshed.refresh_token != at_sign_in.refresh_token  # the provider was asked
    assert lxd_oidc.tokens == [refreshed.access_token]
    assert lxd_oidc.subjects == ["admin"]
    assert tunnel.lxd.requests == [("GET", "/1.0/instances?recursion=2&all-projects=true")]


async def test_lxd_refusing_the_user_is_passed_on_with_a_reason(
    settings, signed_in, tunnel, lxd_oidc, idp
):
    admin = await signed_in(settings, "admin")
    token = sealed_session(admin, settings).access_token
    # The provider forgets the token (revoked there): LXD's userinfo check now fails.
    async with admin.post(
        idp.issuer + "/token/revocation",
        data={"token": token},
        headers={
            "Authorization": aiohttp.encode_basic_auth(
                settings.oidc_client_id, settings.oidc_client_secret
            )
        },
    ) as response:
        assert response.status == 200, await response.text()

    async with admin.get("/1.0/remote-cluster/edge-1/instances") as response:
        body = await response.json()

    assert response.status == 502, body  # LXD's 401 is the cluster's refusal, not ours
    assert "LXD answered 401: Failed OIDC Authentication" in body["error"]
    assert "must trust the same provider" in body["error"]
    assert lxd_oidc.refused == 1
    assert tunnel.lxd.requests == []


async def run_cli(config, *arguments: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cluster_manager.cli", "--config", str(config), *arguments,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_calls_carry_no_user_and_get_lxds_403_clearly(
    settings, tunnel, lxd_oidc, tmp_path
):
    config = write_config(tmp_path / "cli.toml", settings)

    code, out, err = await run_cli(config, "cluster", "instances", "edge-1")
    assert (code, out) == (1, "")
    assert "cluster edge-1: LXD answered 403: Forbidden" in err
    assert "carried no user credentials" in err
    code, out, err = await run_cli(config, "cluster", "instance-state", "edge-1", "web", "stop")
    assert code == 1
    assert "LXD answered 403: Forbidden" in err
    code, out, err = await run_cli(config, "cluster", "lxd", "edge-1", "instances")
    assert code == 1
    assert "cluster edge-1 answered 403: Forbidden (this call carried no user" in err

    assert tunnel.authorizations == ["", "", ""]
    assert tunnel.lxd.requests == []
    assert lxd_oidc.subjects == []
    assert tunnel.lxd.instances["web"].status == "Running"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def entra_like_jwt(claims: dict[str, Any]) -> str:
    """An RS256 JWT shaped like Entra ID's v1 access and ID tokens (header with kid and x5t)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = {"typ": "JWT", "alg": "RS256", "kid": "k" * 27, "x5t": "x" * 27}
    signed = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signed + "." + _b64(signature)


def test_a_large_providers_tokens_do_not_fit_in_the_cookie_the_test_providers_do():
    """Measured sizes: Entra ID-like tokens need the database; small opaque tokens do not."""
    now = int(time.time())
    tenant, user = str(uuid.uuid4()), str(uuid.uuid4())
    groups = [str(uuid.uuid4()) for _ in range(10)]
    access = entra_like_jwt(
        {
            "aud": f"api://{uuid.uuid4()}",
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "acr": "1",
            "aio": secrets.token_urlsafe(90),
            "amr": ["pwd", "mfa"],
            "appid": str(uuid.uuid4()),
            "appidacr": "1",
            "family_name": "Operator",
            "given_name": "Ada",
            "groups": groups,
            "ipaddr": "203.0.113.7",
            "name": "Ada Operator",
            "oid": user,
            "rh": secrets.token_urlsafe(40),
            "scp": "openid profile email offline_access",
            "sub": secrets.token_urlsafe(32),
            "tid": tenant,
            "unique_name": "ada@example.com",
            "upn": "ada@example.com",
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
            "wids": [str(uuid.uuid4()) for _ in range(3)],
        }
    )
    id_token = entra_like_jwt(
        {
            "aud": str(uuid.uuid4()),
            "iss": f"https://login.microsoftonline.com/{tenant}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": "Ada Operator",
            "nonce": secrets.token_urlsafe(24),
            "oid": user,
            "preferred_username": "ada@example.com",
            "rh": secrets.token_urlsafe(40),
            "sub": secrets.token_urlsafe(32),
            "tid": tenant,
            "uti": secrets.token_urlsafe(16),
            "ver": "2.0",
            "groups": groups,
        }
    )
    refresh = "0." + secrets.token_urlsafe(
        1090
    )  # Entra's refresh tokens are opaque, about 1,450 characters
    sealer = Sealer(os.urandom(32), SESSION_COOKIE)
    large = Session(
        subject=secrets.token_urlsafe(32),
        name="Ada Operator",
        email="ada@example.com",
        groups=("admins",),
        csrf="c" * 43,
        expires_at=now + 86400,
        access_expires_at=now + 3600,
        session_id="i" * 24,
        refresh_token=refresh,
        id_token=id_token,
        access_token=access,
    )
    small = large.replace(  # oidc-provider's opaque tokens
        access_token=secrets.token_urlsafe(32), refresh_token=secrets.token_urlsafe(32)
    )

    sizes = {
        "access": len(access),
        "id": len(id_token),
        "refresh": len(refresh),
        "cookie, large tokens": len(sealer.seal(large.to_payload())),
        "cookie, large tokens without id": len(
            sealer.seal(large.replace(id_token="").to_payload())
        ),
        "cookie, opaque tokens": len(sealer.seal(small.to_payload())),
    }
    print("session sizes (characters; a cookie may hold", MAX_COOKIE_CHARS, "):", sizes)

    assert sizes["access"] > 2000
    assert seal_whole(sealer, large) is None
    assert seal_whole(sealer, large.replace(id_token="")) is None  # not even without the ID token
    assert seal_whole(sealer, small) is not None


async def test_tokens_too_large_for_the_cookie_are_kept_sealed_in_postgresql(
    make_oidc_settings, start_server, enrolled, open_tunnel, pool
):
    # 80 random group ids in the ID token: the whole session no longer fits in a cookie.
    groups = ["admins", *(secrets.token_urlsafe(24) for _ in range(80))]  # as Entra's ids
    user = {"password": "grace-password", "name": "Grace", "email": "g@example.test"}
    big_idp = start_idp(users={**USERS, "grace": {**user, "groups": groups}})
    try:
        servers = await start_server(**make_oidc_settings(provider=big_idp), **ROLE_GROUPS)
        settings = servers.settings
        cluster = await enrolled(servers, "edge-1")
        lxd_oidc = LxdOidc(big_idp.issuer, big_idp.ca_file)
        await open_tunnel(cluster, lxd=sample_lxd(), lxd_oidc=lxd_oidc)
        async with new_browser(settings, big_idp) as grace:
            response = await sign_in_flow(
                grace, settings.management_url, "grace", "grace-password"
            )
            assert response.status == 200, await response.text()
            grace.headers["X-CSRF-Token"] = csrf_cookie(grace)
            in_cookie = sealed_session(grace, settings)
            row = await pool.fetchrow(
                "SELECT sealed FROM session_tokens WHERE session_id = $1", in_cookie.session_id
            )

            async with grace.get("/1.0/remote-cluster/edge-1/instances") as response:
                assert response.status == 200, await response.text()
            token = lxd_oidc.tokens[0]
            async with grace.post("/oidc/logout") as response:
                redirect = (await response.json())["metadata"]["redirect"]
            left = await pool.fetchval("SELECT count(*) FROM session_tokens")
    finally:
        big_idp.stop()

    assert in_cookie.tokens_stored
    assert (in_cookie.access_token, in_cookie.refresh_token, in_cookie.id_token) == ("", "", "")
    assert in_cookie.groups[0] == "admins"
    assert row is not None
    assert token not in row["sealed"]
    assert lxd_oidc.subjects == ["grace"]
    assert "id_token_hint=" in redirect  # the ID token came back from the database
    assert left == 0
