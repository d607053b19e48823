"""A simulated cluster's LXD that trusts an OpenID provider, as ``lxc config set oidc.*`` does.

Follows canonical/lxd at a83edf2a79e4346f6e29e3dd3b97be4f5cf3ea05:

- ``lxd/auth/oidc/oidc.go`` lines 121-124: a request with ``Authorization: Bearer <token>``
  (and no ``session`` cookie) is authenticated by the bearer token; lines 134-148 and
  153-172: the token is checked by calling the issuer's userinfo endpoint with it (so opaque
  tokens work too) and the user is the ``sub`` it answers;
- ``lxd/daemon.go`` lines 868-883: a token the provider refuses is an ``AuthError``,
  answered ``401`` (``response.Unauthorized``); lines 910-922: a request with no credentials
  is untrusted and answered ``403`` with ``response.Forbidden(nil)``, whose error text is
  ``http.StatusText(403)``, ``"Forbidden"`` (``lxd/response/response.go`` lines 390-392,
  418-424 and 445-449), in the usual error envelope (``shared/api/response.go`` lines 8-23).

LXD would then start its own session and set a ``session`` cookie; the manager does not keep
LXD's cookie (each call carries the bearer token), so this simulation does not set one.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from cluster_manager.fleet.lxd import error


class LxdOidc:
    """Check ``Authorization`` headers against an issuer's userinfo endpoint.

    ``subjects`` lists, in order, the subject of every call that was let by (what the
    simulated LXD saw); ``refused`` counts the calls answered 401 or 403.
    """

    def __init__(self, issuer: str, ca_file: str = "", timeout: float = 10.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca_file or None)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.subjects: list[str] = []
        self.tokens: list[str] = []  # the bearer tokens seen, for tests
        self.refused = 0
        self._userinfo = ""

    async def _endpoint(self, http: aiohttp.ClientSession) -> str:
        if not self._userinfo:
            url = self.issuer + "/.well-known/openid-configuration"
            async with http.get(url, ssl=self.context) as response:
                metadata: dict[str, Any] = await response.json()
            self._userinfo = str(metadata["userinfo_endpoint"])
        return self._userinfo

    async def authenticate(self, authorization: str) -> tuple[int, bytes] | None:
        """None when the call may go on; else LXD's error answer (status, body)."""
        token = (
            authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else ""
        )
        if not token:
            self.refused += 1
            return error(403, "Forbidden")
        async with aiohttp.ClientSession(timeout=self.timeout) as http:
            endpoint = await self._endpoint(http)
            headers = {"Authorization": "Bearer " + token}
            async with http.get(endpoint, headers=headers, ssl=self.context) as response:
                claims = await response.json() if response.status == 200 else {}
        subject = claims.get("sub") if isinstance(claims, dict) else None
        if not isinstance(subject, str) or not subject:
            self.refused += 1
            return error(
                401,
                "Failed OIDC Authentication: Failed calling user info endpoint with given"
                " access token",
            )
        self.subjects.append(subject)
        self.tokens.append(token)
        return None
