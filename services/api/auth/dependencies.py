"""FastAPI dependencies that every ``/v1`` endpoint is built on.

- :func:`get_principal` resolves ``Authorization: Bearer <JWT>`` (machine clients) or the session
  cookie (people) to a :class:`Principal`, or answers 401 with ``WWW-Authenticate``. For any method
  but GET/HEAD/OPTIONS it also enforces, centrally: auditors and regulators never write (403), the
  token carries the ``write`` scope (403), a cookie-authenticated write carries the CSRF token
  (403), and the write rate limits per principal and per IP (429).
- :func:`require_roles` adds a function-level rule: roles not named may never call (403).
Object-level rules live in the repositories' scoped queries (unseen objects are 404).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit.db import session_dependency
from qilian.kit.errors import Forbidden
from qilian.kit.settings import Settings, get_settings
from services.api.auth import ratelimit, service
from services.api.auth.errors import NotAuthenticated
from services.api.auth.models import Principal, Scope
from services.api.auth.settings import AuthSettings, get_auth_settings
from services.api.organizations.models import Role

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# scope="function": the request's transaction commits before the response is sent. FastAPI's
# default for a dependency with yield ends it after the response: a client was told 201 for a
# write that a crash (or a failing commit) then lost — found by the fault suite (kill -9 of api)
Session = Annotated[AsyncSession, Depends(session_dependency, scope="function")]

# declared for the OpenAPI document (security schemes); resolution is done below
_bearer = HTTPBearer(auto_error=False, bearerFormat="JWT", description="POST /v1/oauth/token")
_cookie = APIKeyCookie(name="qilian_session", auto_error=False, description="POST /v1/auth/login")


def auth_settings(request: Request) -> AuthSettings:
    config = getattr(request.app.state, "auth_settings", None)
    return config if isinstance(config, AuthSettings) else get_auth_settings()


def platform_settings(request: Request) -> Settings:
    settings = getattr(request.app.state, "qilian_settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def resolve(session: AsyncSession, request: Request, config: AuthSettings) -> Principal:
    """The caller's principal from a bearer token, else from the session cookie; 401 otherwise.

    A cookie-authenticated write must carry the CSRF token both as cookie and as header, and it
    must be the one issued with this session (double submit bound to the session).
    """
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("use Authorization: Bearer <token>", error="invalid_request")
        return await service.authenticate_bearer(session, token.strip(), config)
    cookie = request.cookies.get(config.session_cookie)
    if not cookie:
        raise NotAuthenticated()
    principal, user_session = await service.authenticate_session(session, cookie)
    if request.method not in SAFE_METHODS:
        header = request.headers.get(config.csrf_header, "")
        double = request.cookies.get(config.csrf_cookie, "")
        if not header or not hmac.compare_digest(header.encode(), double.encode()):
            raise Forbidden("a CSRF token is required for this request")
        if not service.csrf_matches(user_session, header):
            raise Forbidden("a CSRF token is required for this request")
    return principal


async def get_principal(
    request: Request,
    session: Session,
    _token: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _session_cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    config = auth_settings(request)
    principal = await resolve(session, request, config)
    request.state.principal = principal  # read by the audit middleware for refused writes
    if request.method not in SAFE_METHODS:
        if principal.read_only:
            raise Forbidden(f"a {principal.role.value} reads; it never writes")
        if Scope.write not in principal.scopes:
            raise Forbidden(
                "the access token lacks the write scope", extra={"error": "insufficient_scope"}
            )
        window = config.rate_window_seconds
        await ratelimit.hit(
            ratelimit.Limit(
                f"write:principal:{principal.key()}", config.writes_per_principal, window
            ),
            ratelimit.Limit(f"write:ip:{client_ip(request)}", config.writes_per_ip, window),
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the principal, if its role is one of ``roles``; 403 otherwise."""
    allowed = frozenset(roles)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            raise Forbidden("this role may not do this")
        return principal

    dependency.required_roles = allowed  # type: ignore[attr-defined]
    return dependency


Operator = Annotated[Principal, Depends(require_roles(Role.operator))]
