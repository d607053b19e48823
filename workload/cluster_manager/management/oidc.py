"""The OpenID Connect relying party: discovery, the code flow's HTTP calls, ID token checks.

It talks to the identity provider with one aiohttp session that trusts the system CAs plus
``trusted_ca_file``. Provider metadata and keys are cached; when the provider cannot be reached
callers get ServiceUnavailable and the next call tries again.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
import ssl
import time
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import KeySet

from cluster_manager.errors import ServiceUnavailable, Unauthorized
from cluster_manager.settings import Settings

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1024 * 1024
METADATA_MAX_AGE = 3600.0  # seconds provider metadata is kept before it is fetched again
JWKS_MIN_INTERVAL = 30.0  # an unknown key id fetches the key set again at most this often
CLOCK_LEEWAY = 60  # seconds of clock difference tolerated on exp and iat
SIGNING_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=15)


class ProviderError(Exception):
    """The identity provider refused a request (an OAuth error response)."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


@dataclasses.dataclass(frozen=True)
class Metadata:
    """The parts of the provider's discovery document the flow uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str = ""
    end_session_endpoint: str = ""
    token_auth_methods: tuple[str, ...] = ("client_secret_basic",)


@dataclasses.dataclass(frozen=True)
class Tokens:
    """A token endpoint answer."""

    access_token: str
    expires_in: int
    refresh_token: str
    id_token: str


def client_ssl_context(ca_file: str) -> ssl.SSLContext:
    """System CAs plus the extra bundle in ``ca_file``."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(a.encode(), b.encode())


def _header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWT, unverified (to pick the key); {} if unreadable."""
    head = token.split(".", 1)[0][:4096]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:
        return {}
    return header if isinstance(header, dict) else {}


async def _json(response: aiohttp.ClientResponse) -> Any:
    body = await response.content.read(MAX_RESPONSE_BYTES + 1)
    if len(body) > MAX_RESPONSE_BYTES:
        raise ValueError("answer too large")
    return json.loads(body)


class OidcClient:
    """The relying party for one issuer and client."""

    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.http = http
        self._metadata: Metadata | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        """Whether an issuer and a client id are set."""
        return bool(self.settings.oidc_issuer and self.settings.oidc_client_id)

    async def metadata(self) -> Metadata:
        """Provider metadata, from the cache or discovery."""
        if self._metadata and time.monotonic() - self._metadata_at < METADATA_MAX_AGE:
            return self._metadata
        async with self._lock:
            if self._metadata and time.monotonic() - self._metadata_at < METADATA_MAX_AGE:
                return self._metadata
            try:
                self._metadata = await self._discover()
                self._metadata_at = time.monotonic()
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as error:
                if self._metadata is not None:  # keep using what we had
                    logger.warning("OIDC discovery failed, keeping cached metadata: %s", error)
                    return self._metadata
                logger.warning("OIDC discovery at %s failed: %s", self.settings.oidc_issuer, error)
                raise ServiceUnavailable(
                    "The identity provider cannot be reached; try again shortly"
                ) from None
            return self._metadata

    async def _discover(self) -> Metadata:
        issuer = self.settings.oidc_issuer.rstrip("/")
        url = issuer + "/.well-known/openid-configuration"
        async with self.http.get(url, timeout=REQUEST_TIMEOUT) as response:
            if response.status != 200:
                raise ValueError(f"discovery answered {response.status}")
            document = await _json(response)
        if not isinstance(document, dict):
            raise ValueError("discovery document is not a JSON object")
        if str(document["issuer"]).rstrip("/") != issuer:
            raise ValueError(f"discovery document names issuer {document['issuer']!r}")
        text = {k: v for k, v in document.items() if isinstance(v, str)}
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return Metadata(
            issuer=document["issuer"],
            authorization_endpoint=text["authorization_endpoint"],
            token_endpoint=text["token_endpoint"],
            jwks_uri=text["jwks_uri"],
            userinfo_endpoint=text.get("userinfo_endpoint", ""),
            end_session_endpoint=text.get("end_session_endpoint", ""),
            token_auth_methods=tuple(m for m in methods if isinstance(m, str)),
        )

    async def warm_up(self) -> None:
        """Fetch metadata and keys, retrying with back-off until the provider answers."""
        delay = 1.0
        while True:
            try:
                await self.metadata()
                await self._key_set(refresh=False)
                logger.info("OIDC provider %s discovered", self.settings.oidc_issuer)
                return
            except ServiceUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def _key_set(self, refresh: bool) -> KeySet:
        now = time.monotonic()
        if self._keys is not None and not (refresh and now - self._keys_at > JWKS_MIN_INTERVAL):
            return self._keys
        metadata = await self.metadata()
        try:
            async with self.http.get(metadata.jwks_uri, timeout=REQUEST_TIMEOUT) as response:
                if response.status != 200:
                    raise ValueError(f"JWKS answered {response.status}")
                document = await _json(response)
            keys = [
                k for k in document["keys"] if isinstance(k, dict) and k.get("use", "sig") == "sig"
            ]
            self._keys = KeySet.import_key_set({"keys": keys})
            self._keys_at = now
        except (
            aiohttp.ClientError,
            TimeoutError,
            ValueError,
            KeyError,
            TypeError,
            JoseError,
        ) as e:
            logger.warning("fetching the identity provider's keys failed: %s", e)
            if self._keys is None:
                raise ServiceUnavailable(
                    "The identity provider's keys cannot be fetched"
                ) from None
        return self._keys

    async def authorization_url(
        self, redirect_uri: str, state: str, nonce: str, challenge: str
    ) -> str:
        """Where /oidc/login sends the browser."""
        metadata = await self.metadata()
        params = {
            "response_type": "code",
            "client_id": self.settings.oidc_client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.settings.oidc_scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if self.settings.oidc_audience:
            params["audience"] = self.settings.oidc_audience  # Auth0's API identifier
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return metadata.authorization_endpoint + separator + urlencode(params)

    async def exchange_code(self, code: str, verifier: str, redirect_uri: str) -> Tokens:
        """Trade an authorization code for tokens."""
        return await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> Tokens:
        """Trade a refresh token for fresh tokens."""
        return await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def _token_request(self, form: dict[str, str]) -> Tokens:
        metadata = await self.metadata()
        settings = self.settings
        headers = {"Accept": "application/json"}
        form = dict(form)
        if not settings.oidc_client_secret:
            form["client_id"] = settings.oidc_client_id  # a public client
        elif (
            "client_secret_basic" not in metadata.token_auth_methods
            and "client_secret_post" in metadata.token_auth_methods
        ):
            form["client_id"] = settings.oidc_client_id
            form["client_secret"] = settings.oidc_client_secret
        else:
            client_id = quote(settings.oidc_client_id, safe="")
            pair = f"{client_id}:{quote(settings.oidc_client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            async with self.http.post(
                metadata.token_endpoint, data=form, headers=headers, timeout=REQUEST_TIMEOUT
            ) as response:
                try:
                    document = await _json(response)
                except ValueError:
                    document = None
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            logger.warning("the identity provider's token endpoint cannot be reached")
            raise ServiceUnavailable("The identity provider cannot be reached") from None
        if not isinstance(document, dict):
            raise ProviderError("invalid_response", f"token endpoint answered {status}")
        if status != 200 or "error" in document:
            raise ProviderError(
                str(document.get("error", "invalid_response"))[:64],
                str(document.get("error_description", ""))[:200],
            )
        access_token = document.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ProviderError("invalid_response", "no access_token in the token response")
        expires_in = document.get("expires_in", 3600)
        refresh_token = document.get("refresh_token", "")
        id_token = document.get("id_token", "")
        return Tokens(
            access_token=access_token,
            expires_in=int(expires_in) if isinstance(expires_in, int | float | str) else 3600,
            refresh_token=refresh_token if isinstance(refresh_token, str) else "",
            id_token=id_token if isinstance(id_token, str) else "",
        )

    async def validate_id_token(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        """Check an ID token's signature, issuer, audience, expiry and nonce; return its claims.

        ``nonce`` None skips the nonce check (ID tokens from a refresh carry none to compare).
        Raises Unauthorized with the reason.
        """
        metadata = await self.metadata()
        client_id = self.settings.oidc_client_id
        keys = await self._key_set(refresh=False)
        kid = _header(id_token).get("kid")
        if kid and not any(key.kid == kid for key in keys.keys):
            keys = await self._key_set(refresh=True)  # the provider may have rotated its keys
        try:
            token = jwt.decode(id_token, keys, algorithms=SIGNING_ALGORITHMS)
            registry = jwt.JWTClaimsRegistry(
                leeway=CLOCK_LEEWAY,
                iss={"essential": True, "value": metadata.issuer},
                aud={"essential": True, "value": client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
            )
            registry.validate(token.claims)
        except ExpiredTokenError:
            raise Unauthorized("Sign-in failed: the ID token has expired") from None
        except MissingClaimError as error:
            raise Unauthorized(
                f"Sign-in failed: the ID token has no {error.claim} claim"
            ) from None
        except JoseError as error:
            claim = getattr(error, "claim", "")
            what = {"aud": "audience", "iss": "issuer"}.get(claim, claim)
            reason = f"wrong {what}" if what else "its signature or format is invalid"
            raise Unauthorized(f"Sign-in failed: the ID token is not valid ({reason})") from None
        except ValueError:
            raise Unauthorized("Sign-in failed: the ID token is malformed") from None
        claims = token.claims
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != client_id:
            raise Unauthorized(
                "Sign-in failed: the ID token is not valid (wrong authorized party)"
            )
        if nonce is not None:
            token_nonce = claims.get("nonce")
            if not isinstance(token_nonce, str) or not same(token_nonce, nonce):
                raise Unauthorized("Sign-in failed: the ID token's nonce does not match")
        return claims

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        """The userinfo endpoint's claims (empty when the provider has none or refuses)."""
        metadata = await self.metadata()
        if not metadata.userinfo_endpoint:
            return {}
        try:
            async with self.http.get(
                metadata.userinfo_endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=REQUEST_TIMEOUT,
            ) as response:
                if response.status != 200:
                    logger.warning("userinfo answered %s", response.status)
                    return {}
                document = await _json(response)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            logger.warning("userinfo request failed")
            return {}
        return document if isinstance(document, dict) else {}

    async def end_session_url(self, id_token: str, post_logout_redirect_uri: str) -> str | None:
        """The provider's logout URL, or None when it offers no end-session endpoint."""
        try:
            metadata = await self.metadata()
        except ServiceUnavailable:
            return None
        if not metadata.end_session_endpoint:
            return None
        params = {
            "client_id": self.settings.oidc_client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
        }
        if id_token:
            params["id_token_hint"] = id_token
        separator = "&" if "?" in metadata.end_session_endpoint else "?"
        return metadata.end_session_endpoint + separator + urlencode(params)
