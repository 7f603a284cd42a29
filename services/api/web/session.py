"""Who is looking at a page: the person of the session cookie that ``POST /v1/auth/login`` (or the
login page, which calls the same service) set.

The rules are those of :func:`services.api.auth.dependencies.get_principal`, read from the same
services: the session must be live, a write must carry the CSRF token of this session (as the form
field ``csrf_token`` — a plain HTML form cannot send a header — or as the ``X-CSRF-Token`` header),
auditors and regulators never write, and writes count against the same rate limits. A page asked
for without a session redirects to the login page instead of answering 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit import db
from qilian.kit.errors import Forbidden
from services.api.auth import ratelimit
from services.api.auth import service as auth_service
from services.api.auth.dependencies import (
    SAFE_METHODS,
    Session,
    auth_settings,
    client_ip,
    platform_settings,
)
from services.api.auth.errors import NotAuthenticated
from services.api.auth.models import Principal, Scope
from services.api.organizations.models import Organization, Role

CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """No live session: the page redirects to the login page (and back after it)."""


def csrf_token(request: Request) -> str:
    """The CSRF token the browser holds (its cookie), written into every form of the page."""
    return request.cookies.get(auth_settings(request).csrf_cookie, "")


async def _csrf_sent(request: Request) -> str:
    header = request.headers.get(auth_settings(request).csrf_header)
    if header:
        return header
    form = await request.form()  # parsed once; the handler reads the same form
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else ""


async def page_principal(request: Request, session: Session) -> Principal:
    return await _resolve(request, session, writes=True)


async def reading_principal(request: Request, session: Session) -> Principal:
    """For a POST that changes nothing (the auditor's bundle upload is a file sent to be read):
    the session and its CSRF token are checked, read-only roles are welcome."""
    return await _resolve(request, session, writes=False)


async def _resolve(request: Request, session: AsyncSession, *, writes: bool) -> Principal:
    config = auth_settings(request)
    cookie = request.cookies.get(config.session_cookie)
    if not cookie:
        raise LoginRequired()
    try:
        principal, user_session = await auth_service.authenticate_session(session, cookie)
    except NotAuthenticated:
        raise LoginRequired() from None
    request.state.principal = principal  # the audit of refused writes reads it
    request.state.organization = await session.get(Organization, principal.organization_id)
    if request.method not in SAFE_METHODS:
        sent = await _csrf_sent(request)
        held = request.cookies.get(config.csrf_cookie, "")
        if (
            not sent
            or not hmac.compare_digest(sent.encode(), held.encode())
            or not auth_service.csrf_matches(user_session, sent)
        ):
            raise Forbidden("a CSRF token is required for this request")
        if not writes:
            return principal
        if principal.read_only:
            raise Forbidden(f"a {principal.role.value} reads; it never writes")
        if Scope.write not in principal.scopes:
            raise Forbidden("this session may not write")
        window = config.rate_window_seconds
        await ratelimit.hit(
            ratelimit.Limit(
                f"write:principal:{principal.key()}", config.writes_per_principal, window
            ),
            ratelimit.Limit(f"write:ip:{client_ip(request)}", config.writes_per_ip, window),
        )
    return principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]


def page_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """Like :func:`services.api.auth.dependencies.require_roles`, for pages: 403 otherwise."""
    allowed = frozenset(roles)

    async def dependency(principal: PagePrincipal) -> Principal:
        if principal.role not in allowed:
            raise Forbidden("this role may not do this")
        return principal

    return dependency


SupplierPage = Annotated[Principal, Depends(page_roles(Role.supplier))]
CoreFirmPage = Annotated[Principal, Depends(page_roles(Role.core_firm))]
AuditorPage = Annotated[Principal, Depends(page_roles(Role.auditor))]


async def _auditor_reading(
    principal: Annotated[Principal, Depends(reading_principal)],
) -> Principal:
    if principal.role != Role.auditor:
        raise Forbidden("this role may not do this")
    return principal


AuditorReading = Annotated[Principal, Depends(_auditor_reading)]


async def login(request: Request, username: str, password: str) -> auth_service.LoginResult:
    """The password check of ``POST /v1/auth/login`` (same service, same rate limit, its own
    transaction so that a failure is counted and audited)."""
    config = auth_settings(request)
    await ratelimit.hit(
        ratelimit.Limit(
            f"login:ip:{client_ip(request)}", config.login_per_ip, config.rate_window_seconds
        )
    )
    async with db.transaction() as session:
        return await auth_service.login(session, config, username, password)


def session_cookies(request: Request, result: auth_service.LoginResult) -> list[dict[str, object]]:
    """The two cookies ``POST /v1/auth/login`` sets, with the same attributes."""
    config = auth_settings(request)
    secure = platform_settings(request).env != "development"
    common = {"max_age": config.session_hours * 3600, "secure": secure, "samesite": "lax"}
    return [
        {"key": config.session_cookie, "value": result.session_token, "httponly": True, **common},
        {"key": config.csrf_cookie, "value": result.csrf_token, "httponly": False, **common},
    ]


async def logout(request: Request, session: AsyncSession) -> None:
    cookie = request.cookies.get(auth_settings(request).session_cookie)
    if cookie:
        await auth_service.logout(session, cookie)
