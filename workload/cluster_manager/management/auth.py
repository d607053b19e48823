"""Sign-in for the Management API: the OIDC routes, sessions and the middleware that guards /1.0.

Rules the middleware applies:

- every ``/1.0`` path needs a signed-in user whose role (roles.py: admin, operator or viewer,
  from the groups claim) allows the operation, except ``GET /1.0/configuration``, which
  anybody may read (the UI asks it who is signed in);
- not signed in: 401 JSON, never a redirect; signed in without the role: 403 naming the
  groups claim and the group needed;
- POST, PUT, PATCH and DELETE must carry the header ``X-CSRF-Token`` with the session's token
  (given by ``GET /1.0/configuration`` and in the cookie ``__Host-mcm_csrf``), else 403;
- a session signed out (on any unit) is refused like an expired one: 401;
- everything else (/health, /oidc, /openapi, the UI's static files) passes untouched.

An expired access token is refreshed with the refresh token while the request waits, and the
re-sealed cookie goes out with the response. The access token itself rides in the sealed
session cookie: handlers read it with :func:`access_token` to send it, as a bearer token, to
the LXD of a cluster the user acts on (remote_lxd.py); it never reaches the browser in clear.

Signing out is ``POST /oidc/logout`` with the session's CSRF token (the ``X-CSRF-Token``
header, or the form field ``csrf_token``) from this origin: it revokes the session on every
unit and sends the browser on to the identity provider's end-session endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import aiohttp
import msgspec
from aiohttp import web

from cluster_manager.db import POOL
from cluster_manager.envelope import Handler, error_response, sync_response
from cluster_manager.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    ServiceUnavailable,
    Unauthorized,
)
from cluster_manager.management import sessions
from cluster_manager.management.oidc import (
    OidcClient,
    ProviderError,
    client_ssl_context,
    pkce_pair,
    same,
)
from cluster_manager.management.operations import Redirect, documented, operation_of
from cluster_manager.management.revocations import REVOKED, revocation_context
from cluster_manager.management.roles import (
    Role,
    allows,
    group_of,
    needed_role,
    role_groups,
    role_of,
)
from cluster_manager.management.session_tokens import SessionTokens
from cluster_manager.management.sessions import Sealer, Session
from cluster_manager.notifications import notifications_context
from cluster_manager.settings import Settings

logger = logging.getLogger(__name__)

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"  # the same token in a sign-out form
LOGIN_LIFETIME = 600  # seconds between /oidc/login and /oidc/callback
REFRESH_MARGIN = 5  # an access token this close to expiry is refreshed
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LXD_UI_PREFIX = "/lxd-ui/"  # clusters' own LXD UI (cluster_manager.lxd_ui), admin only
PUBLIC_API = frozenset({("GET", "/1.0/configuration"), ("HEAD", "/1.0/configuration")})
MAX_PARAM_CHARS = 2048


@dataclasses.dataclass(frozen=True)
class User:
    """The signed-in person."""

    subject: str
    name: str
    email: str
    groups: tuple[str, ...]
    is_admin: bool
    role: Role | None = None


@dataclasses.dataclass
class _Auth:
    settings: Settings
    oidc: OidcClient
    session_sealer: Sealer
    login_sealer: Sealer
    refreshing: dict[str, asyncio.Future[Session]]
    tokens: SessionTokens  # tokens too large for the cookie


AUTH = web.AppKey("management_auth", _Auth)
USER = web.RequestKey("management_user", User)
CSRF = web.RequestKey("management_csrf", str)
ACCESS_TOKEN = web.RequestKey("management_access_token", str)


def current_user(request: web.Request) -> User | None:
    """The signed-in user of this request, or None."""
    return request.get(USER)


def access_token(request: web.Request) -> str:
    """The signed-in user's current OIDC access token ("" without one); for clusters' LXD only.

    It is refreshed by the guard before the handler runs when it is about to expire. Never log
    it or put it in a response.
    """
    return request.get(ACCESS_TOKEN, "")


def csrf_token(request: web.Request) -> str | None:
    """The token state-changing calls of this session must send in ``X-CSRF-Token``."""
    return request.get(CSRF)


def setup_auth(app: web.Application, settings: Settings) -> None:
    """Add the /oidc routes, the guard middleware and the identity provider client."""
    app.router.add_get("/oidc/login", login)
    app.router.add_get("/oidc/callback", callback)
    app.router.add_post("/oidc/logout", logout)
    app.middlewares.append(auth_middleware)
    app.cleanup_ctx.append(notifications_context(settings.database_dsn))
    app.cleanup_ctx.append(revocation_context())
    app.cleanup_ctx.append(_auth_context(settings))


def _auth_context(
    settings: Settings,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def context(app: web.Application) -> AsyncIterator[None]:
        key = sessions.load_key(settings.session_key_file)
        connector = aiohttp.TCPConnector(
            ssl=client_ssl_context(settings.trusted_ca_file), limit=20, ttl_dns_cache=300
        )
        async with aiohttp.ClientSession(connector=connector) as http:
            oidc = OidcClient(settings, http)
            app[AUTH] = _Auth(
                settings=settings,
                oidc=oidc,
                session_sealer=Sealer(key, sessions.SESSION_COOKIE),
                login_sealer=Sealer(key, sessions.LOGIN_COOKIE),
                refreshing={},
                tokens=SessionTokens(app[POOL], key),
            )
            warm_up = asyncio.create_task(oidc.warm_up()) if oidc.configured else None
            try:
                yield
            finally:
                if warm_up is not None:
                    warm_up.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await warm_up

    return context


# --- helpers ------------------------------------------------------------------------------


def _base_url(request: web.Request, settings: Settings) -> str:
    if settings.management_url:
        return settings.management_url.rstrip("/")
    return f"{request.scheme}://{request.host}"


def _redirect_uri(request: web.Request, settings: Settings) -> str:
    return _base_url(request, settings) + "/oidc/callback"


def _redirect(location: str, status: int = 302) -> web.Response:
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


def _set_cookie(
    response: web.StreamResponse, name: str, value: str, max_age: int, http_only: bool = True
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max(0, max_age),
        path="/",
        secure=True,
        httponly=http_only,
        samesite="Lax",
    )


def _clear_cookies(response: web.StreamResponse, *names: str) -> None:
    for name in names:
        response.del_cookie(name, path="/", secure=True, httponly=True, samesite="Lax")


def _user_of(session: Session, settings: Settings) -> User:
    return User(
        subject=session.subject,
        name=session.name,
        email=session.email,
        groups=session.groups,
        is_admin=settings.oidc_admin_group in session.groups,
        role=role_of(session.groups, settings),
    )


def _text_claim(claims: dict[str, Any], *names: str) -> str:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value[:256]
    return ""


async def _groups(auth: _Auth, claims: dict[str, Any], access_token: str) -> tuple[str, ...]:
    """Groups from the ID token's groups claim, else from userinfo."""
    settings = auth.settings
    claim = settings.oidc_groups_claim
    if claim not in claims:
        claims = await auth.oidc.userinfo(access_token)
    return sessions.bounded_groups(claims.get(claim), role_groups(settings))


# --- routes -------------------------------------------------------------------------------


class CallbackQuery(msgspec.Struct):
    """The identity provider's answer to /oidc/login (RFC 6749 section 4.1.2, RFC 9207)."""

    code: Annotated[str, msgspec.Meta(description="authorization code")] = ""
    state: Annotated[str, msgspec.Meta(description="state sent by /oidc/login")] = ""
    iss: Annotated[str, msgspec.Meta(description="the issuer answering")] = ""
    error: Annotated[str, msgspec.Meta(description="the provider's refusal")] = ""


@documented(response=Redirect, signed_in=False)
async def login(request: web.Request) -> web.StreamResponse:
    """Send the browser to the identity provider (authorization code with PKCE)."""
    auth = request.app[AUTH]
    if not auth.oidc.configured:
        raise ServiceUnavailable("Sign-in is not configured: set oidc_issuer and oidc_client_id")
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    url = await auth.oidc.authorization_url(
        _redirect_uri(request, auth.settings), state, nonce, challenge
    )
    response = _redirect(url)
    expires = int(time.time()) + LOGIN_LIFETIME
    sealed = auth.login_sealer.seal(
        {"state": state, "nonce": nonce, "pkce": verifier, "exp": expires}
    )
    _set_cookie(response, sessions.LOGIN_COOKIE, sealed, LOGIN_LIFETIME)
    return response


@documented(
    response=Redirect,
    query=CallbackQuery,
    errors=(400, 401, 503),
    signed_in=False,
    summary="The identity provider's answer: starts the session, redirects to /",
)
async def callback(request: web.Request) -> web.StreamResponse:
    """Finish the code flow: check state, exchange the code, check the ID token, sign in."""
    auth = request.app[AUTH]
    settings = auth.settings
    query = request.query
    pending = auth.login_sealer.open(request.cookies.get(sessions.LOGIN_COOKIE))
    if pending is None:
        raise BadRequest("Sign-in expired or was started elsewhere: open /oidc/login again")
    if "error" in query:
        error = query.get("error", "")[:64]
        logger.info("identity provider refused sign-in: %s", error)
        raise Unauthorized(f"The identity provider refused sign-in: {error}")
    state, code = query.get("state", ""), query.get("code", "")
    if not code or len(code) > MAX_PARAM_CHARS or len(state) > MAX_PARAM_CHARS:
        raise BadRequest("Sign-in answer without a valid code")
    if not same(state, str(pending.get("state", ""))):
        raise BadRequest("Sign-in state does not match: open /oidc/login again")
    metadata = await auth.oidc.metadata()
    if "iss" in query and query["iss"] != metadata.issuer:  # RFC 9207 mix-up defence
        raise BadRequest("Sign-in answer comes from another issuer")
    try:
        tokens = await auth.oidc.exchange_code(
            code, str(pending["pkce"]), _redirect_uri(request, settings)
        )
    except ProviderError as error:
        logger.info("code exchange refused: %s", error.error)
        raise Unauthorized(
            f"The identity provider refused the sign-in code: {error.error}"
        ) from None
    if not tokens.id_token:
        raise Unauthorized("The identity provider sent no ID token (is the openid scope set?)")
    claims = await auth.oidc.validate_id_token(tokens.id_token, str(pending["nonce"]))
    now = int(time.time())
    session = Session(
        subject=str(claims["sub"])[:256],
        name=_text_claim(claims, "name", "preferred_username", "email")
        or str(claims["sub"])[:256],
        email=_text_claim(claims, "email"),
        groups=await _groups(auth, claims, tokens.access_token),
        csrf=secrets.token_urlsafe(32),
        session_id=secrets.token_urlsafe(18),
        expires_at=now + settings.session_lifetime,
        access_expires_at=now + tokens.expires_in,
        refresh_token=tokens.refresh_token,
        id_token=tokens.id_token,
        access_token=tokens.access_token,
    )
    logger.info(
        "signed in %s (admin: %s)",
        session.subject[:64],
        settings.oidc_admin_group in session.groups,
    )
    response = _redirect("/", status=303)
    _clear_cookies(response, sessions.LOGIN_COOKIE)
    await _start_session(response, auth, session)
    return response


async def _start_session(response: web.StreamResponse, auth: _Auth, session: Session) -> Session:
    """Set the session cookies; tokens too large for the cookie go to PostgreSQL."""
    session = session.replace(tokens_stored=False)  # tokens in hand: placed anew
    value = sessions.seal_whole(auth.session_sealer, session)
    if value is not None:
        sealed_session = session
    else:
        session = await auth.tokens.save(session)
        sealed_session, value = sessions.seal_session(
            auth.session_sealer, session, role_groups(auth.settings)
        )
    max_age = sealed_session.expires_at - int(time.time())
    _set_cookie(response, sessions.SESSION_COOKIE, value, max_age)
    _set_cookie(response, sessions.CSRF_COOKIE, sealed_session.csrf, max_age, http_only=False)
    return sealed_session


class SignOutForm(msgspec.Struct):
    """A sign-out form: the session's CSRF token, when the X-CSRF-Token header is not sent."""

    csrf_token: str = ""


class SignedOut(msgspec.Struct):
    """Where the browser goes next: the provider's end-session page, or /."""

    redirect: str


@documented(
    response=SignedOut,
    form=SignOutForm,
    signed_in=False,
    csrf="optional",
    errors=(400, 403, 413, 503),
    summary="Sign out: end the session on every unit (and at the provider, if offered)",
    response_description="signed out (X-CSRF-Token sent): where the browser goes next",
    also_redirects="signed out (form): the provider's end-session page or /",
)
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session on every unit and, where the provider offers it, at the provider.

    A signed-in browser must prove the request comes from the UI: the session's CSRF token in
    the ``X-CSRF-Token`` header (the UI's fetch, answered with JSON naming where to go next) or
    in the form field ``csrf_token`` (answered with a redirect), and no foreign ``Origin``.
    Without a valid session there is nothing to end: the cookies are cleared either way.
    """
    auth = request.app[AUTH]
    payload = auth.session_sealer.open(request.cookies.get(sessions.SESSION_COOKIE))
    session = Session.from_payload(payload) if payload else None
    header = request.headers.get(CSRF_HEADER)
    target = "/"
    if session is not None:
        _check_origin(request, auth.settings)
        sent = header
        if sent is None:
            try:
                form = await request.post()
            except ValueError:  # a body that is not a form: no token in it
                form = None
            field = form.get(CSRF_FIELD) if form is not None else None
            sent = field if isinstance(field, str) else ""
        if not sent or not same(sent, session.csrf):
            raise Forbidden(f"Missing or wrong {CSRF_HEADER}: sign out from the page")
        revoked = request.app[REVOKED]
        if not await revoked.is_revoked(session.session_id):
            await revoked.revoke(session.session_id, session.expires_at)
            logger.info("signed out %s", session.subject[:64])
        if session.tokens_stored:
            stored = await auth.tokens.load(session)
            session = stored or session
            await auth.tokens.forget(session.session_id)
        if auth.oidc.configured:
            base = _base_url(request, auth.settings)
            target = await auth.oidc.end_session_url(session.id_token, base + "/") or "/"
    if header is not None:
        response: web.StreamResponse = sync_response(SignedOut(redirect=target))
    else:
        response = _redirect(target, status=303)
    _clear_cookies(response, sessions.SESSION_COOKIE, sessions.CSRF_COOKIE, sessions.LOGIN_COOKIE)
    return response


def _check_origin(request: web.Request, settings: Settings) -> None:
    """Refuse a request a browser says comes from another origin."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != _base_url(request, settings):
        raise Forbidden("Sign-out from another site is refused")


# --- the guard ----------------------------------------------------------------------------


class _SessionEnded(Exception):
    """The cookie is unreadable or the session can no longer be refreshed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _refresh(auth: _Auth, session: Session) -> Session:
    """Refresh the access token; concurrent requests of one session share one refresh."""
    key = hashlib.sha256(session.refresh_token.encode()).hexdigest()
    pending = auth.refreshing.get(key)
    if pending is None:
        pending = asyncio.get_running_loop().create_future()
        auth.refreshing[key] = pending
        try:
            refreshed = await _refresh_once(auth, session)
        except BaseException as error:
            pending.set_exception(error)
            pending.exception()  # retrieved: waiters already in line re-raise it
            if not isinstance(error, _SessionEnded):  # the provider may answer next time
                auth.refreshing.pop(key, None)
            raise
        finally:
            # Keep the answer a little while for requests already in flight with the old cookie.
            asyncio.get_running_loop().call_later(30, auth.refreshing.pop, key, None)
        pending.set_result(refreshed)
        return refreshed
    return await asyncio.shield(pending)


async def _refresh_once(auth: _Auth, session: Session) -> Session:
    try:
        tokens = await auth.oidc.refresh(session.refresh_token)
    except ProviderError as error:
        logger.info("refresh refused for %s: %s", session.subject[:64], error.error)
        raise _SessionEnded("Session expired: sign in again") from None
    now = int(time.time())
    groups = session.groups
    id_token = session.id_token
    if tokens.id_token:
        try:
            claims = await auth.oidc.validate_id_token(tokens.id_token, None)
        except Unauthorized as error:
            raise _SessionEnded(error.message) from None
        if not same(str(claims["sub"]), session.subject):
            raise _SessionEnded("Session expired: the identity provider changed the subject")
        groups = await _groups(auth, claims, tokens.access_token)
        id_token = tokens.id_token
    else:
        info = await auth.oidc.userinfo(tokens.access_token)
        if auth.settings.oidc_groups_claim in info:
            groups = sessions.bounded_groups(
                info[auth.settings.oidc_groups_claim], role_groups(auth.settings)
            )
    return session.replace(
        groups=groups,
        access_expires_at=now + tokens.expires_in,
        refresh_token=tokens.refresh_token or session.refresh_token,
        id_token=id_token,
        access_token=tokens.access_token,
    )


async def _load_session(request: web.Request, auth: _Auth) -> tuple[Session | None, bool]:
    """The request's session (refreshed when due) and whether its cookie must be re-sent."""
    value = request.cookies.get(sessions.SESSION_COOKIE)
    if value is None:
        return None, False
    payload = auth.session_sealer.open(value)
    session = Session.from_payload(payload) if payload else None
    if session is None:
        raise _SessionEnded("Session cookie is invalid or expired: sign in again")
    if await request.app[REVOKED].is_revoked(session.session_id):
        raise _SessionEnded("Session ended (signed out): sign in again")
    if session.tokens_stored:
        stored = await auth.tokens.load(session)
        if stored is None:
            raise _SessionEnded("Session ended (its tokens are gone): sign in again")
        session = stored
    if session.access_expires_at - REFRESH_MARGIN > time.time():
        return session, False
    if not session.refresh_token:
        raise _SessionEnded("Session expired: sign in again")
    return await _refresh(auth, session), True


def _is_api(path: str) -> bool:
    return path == "/1.0" or path.startswith("/1.0/") or path.startswith(LXD_UI_PREFIX)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Guard /1.0: sessions, the admin group and the CSRF header."""
    if not _is_api(request.path):
        return await handler(request)
    auth = request.app[AUTH]
    public = (request.method, request.path) in PUBLIC_API
    try:
        session, renewed = await _load_session(request, auth)
    except _SessionEnded as ended:
        if not public:
            response = error_response(401, ended.message)
            _clear_cookies(response, sessions.SESSION_COOKIE, sessions.CSRF_COOKIE)
            return response
        response = await _answer(request, handler)
        _clear_cookies(response, sessions.SESSION_COOKIE, sessions.CSRF_COOKIE)
        return response
    user = _user_of(session, auth.settings) if session is not None else None
    if session is not None and user is not None:
        request[USER] = user
        request[CSRF] = session.csrf
        request[ACCESS_TOKEN] = session.access_token
    refusal = None if public else _refusal(request, auth, session, user)
    if not renewed:
        if refusal is not None:
            raise refusal
        return await handler(request)
    if refusal is not None:
        response = error_response(refusal.status, refusal.message)
    else:
        response = await _answer(request, handler)
    assert session is not None
    await _start_session(response, auth, session)
    return response


def _refusal(
    request: web.Request, auth: _Auth, session: Session | None, user: User | None
) -> ApiError | None:
    """Why this /1.0 request may not go on, or None."""
    if session is None or user is None:
        return Unauthorized("Not signed in: sign in at /oidc/login")
    if request.path.startswith(LXD_UI_PREFIX):
        return _lxd_ui_refusal(request, auth, session, user)
    needed = needed_role(request.method, _declared_role(request))
    if not allows(user.role, needed):
        settings = auth.settings
        if needed == "admin":
            return Forbidden(
                f"{user.name} is not in the group {settings.oidc_admin_group!r} (read from the"
                f" {settings.oidc_groups_claim!r} claim), which administers this cluster manager"
            )
        groups = " or ".join(
            repr(group_of(r, settings))
            for r in ("admin", "operator", "viewer")
            if allows(r, needed) and group_of(r, settings)
        )
        return Forbidden(
            f"{user.name} has the role {user.role or 'none'}; this needs the role {needed}"
            f" (a group {groups} in the {settings.oidc_groups_claim!r} claim)"
        )
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not same(sent, session.csrf):
            return Forbidden(f"Missing or wrong {CSRF_HEADER} header")
    return None


def _lxd_ui_refusal(
    request: web.Request, auth: _Auth, session: Session, user: User
) -> ApiError | None:
    """A cluster's LXD UI (/lxd-ui/): administrators only, changes from this origin only.

    The LXD UI cannot send ``X-CSRF-Token``, so a change must show it comes from a page of
    this origin: ``Sec-Fetch-Site: same-origin``, else an ``Origin`` equal to this one, else
    the header after all (scripts); a request with none of them is refused.
    """
    if user.role != "admin":
        return Forbidden(
            f"{user.name} is not in the group {auth.settings.oidc_admin_group!r}: only"
            " administrators may open a cluster's LXD UI"
        )
    if request.method in SAFE_METHODS:
        return None
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site is not None:
        same_origin = site == "same-origin"
    elif origin is not None:
        same_origin = origin == _base_url(request, auth.settings)
    else:
        sent = request.headers.get(CSRF_HEADER, "")
        same_origin = bool(sent) and same(sent, session.csrf)
    if not same_origin:
        return Forbidden("A change through the LXD UI must come from this site's own pages")
    return None


def _declared_role(request: web.Request) -> Role | None:
    """The role the matched route's operation declares, if any."""
    operation = operation_of(getattr(request.match_info, "handler", None))
    return operation.role if operation is not None else None


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the handler, turning a domain error into its response so cookies can be added."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.message, error.headers)
