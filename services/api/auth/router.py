"""HTTP side of identity: the token endpoint, the JWKS, ``/v1/me``, login and logout."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from qilian.kit import db
from qilian.kit.errors import Forbidden
from services.api.auth import keys, ratelimit, service
from services.api.auth.dependencies import (
    CurrentPrincipal,
    Session,
    auth_settings,
    client_ip,
    platform_settings,
)
from services.api.auth.errors import NotAuthenticated, OAuthInvalidRequest
from services.api.auth.schemas import (
    LoginRequest,
    LoginResponse,
    Me,
    MeOrganization,
    TokenRequest,
    TokenResponse,
)
from services.api.organizations.models import Organization

router = APIRouter(tags=["auth"])

_TOKEN_SCHEMA = TokenRequest.model_json_schema()
_TOKEN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _TOKEN_SCHEMA},
            "application/json": {"schema": _TOKEN_SCHEMA},
        },
    }
}


async def _token_request(request: Request) -> TokenRequest:
    """Form (RFC 6749) or JSON; the client may authenticate with HTTP Basic instead."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict[str, Any]
    if content_type == "application/json":
        try:
            parsed = await request.json()
        except ValueError:
            raise OAuthInvalidRequest("invalid_request", "the body is not JSON") from None
        if not isinstance(parsed, dict):
            raise OAuthInvalidRequest("invalid_request", "the body must be a JSON object")
        fields = dict(parsed)
    elif content_type == "application/x-www-form-urlencoded":
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    else:
        raise OAuthInvalidRequest(
            "invalid_request", "send application/x-www-form-urlencoded or application/json"
        )
    basic = request.headers.get("authorization", "")
    if basic.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(basic[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthInvalidRequest("invalid_request", "malformed Basic credentials") from None
        client_id, _, client_secret = decoded.partition(":")
        fields.setdefault("client_id", unquote_plus(client_id))
        fields.setdefault("client_secret", unquote_plus(client_secret))
    if fields.get("grant_type") not in (None, "client_credentials"):
        raise OAuthInvalidRequest("unsupported_grant_type", "only client_credentials is supported")
    try:
        return TokenRequest.model_validate(fields)
    except ValidationError as exc:
        names = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        raise OAuthInvalidRequest("invalid_request", f"invalid or missing: {names}") from None


@router.post(
    "/v1/oauth/token",
    response_model=TokenResponse,
    openapi_extra=_TOKEN_BODY,
    summary="Client-credentials access token (RFC 6749 §4.4)",
)
async def token(request: Request, session: Session) -> JSONResponse:
    """A short-lived EdDSA-signed JWT for the client's organisation and role."""
    config = auth_settings(request)
    window = config.rate_window_seconds
    await ratelimit.hit(
        ratelimit.Limit(f"token:ip:{client_ip(request)}", config.token_per_ip, window)
    )
    body = await _token_request(request)
    issued = await service.client_credentials_grant(
        session,
        secret_key=platform_settings(request).secret_key,
        config=config,
        client_id=body.client_id,
        client_secret=body.client_secret,
        scope=body.scope,
    )
    # counted once the client is authenticated: nobody can spend another client's budget
    await ratelimit.hit(
        ratelimit.Limit(f"token:client:{body.client_id}", config.token_per_client, window)
    )
    payload = TokenResponse(
        access_token=issued.access_token, expires_in=issued.expires_in, scope=issued.scope
    )
    return JSONResponse(
        payload.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )


@router.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
async def jwks(session: Session) -> JSONResponse:
    return JSONResponse(await keys.jwks(session), headers={"Cache-Control": "max-age=60"})


@router.get("/v1/me", response_model=Me)
async def me(principal: CurrentPrincipal, session: Session) -> Me:
    """The caller's organisation and role."""
    org = await session.get(Organization, principal.organization_id)
    if org is None:
        raise NotAuthenticated()
    return Me(
        kind=principal.kind.value,
        client_id=principal.client_id,
        user_id=principal.user_id,
        organization_id=org.id,
        role=principal.role,
        scopes=sorted(s.value for s in principal.scopes),
        organization=MeOrganization(id=org.id, name=org.name, role=org.role, cluster=org.cluster),
    )


@router.post("/v1/auth/login", response_model=LoginResponse)
async def login(body: LoginRequest, request: Request, response: Response) -> LoginResponse:
    """Password login for people: sets the session cookie and the CSRF cookie.

    Repeated failures lock the account with a growing delay; the answer does not say whether the
    user exists, the password was wrong or the account is locked.
    """
    config = auth_settings(request)
    await ratelimit.hit(
        ratelimit.Limit(
            f"login:ip:{client_ip(request)}", config.login_per_ip, config.rate_window_seconds
        )
    )
    # own transaction: a failed attempt is counted and audited although the answer is 401
    async with db.transaction() as session:
        result = await service.login(session, config, body.username, body.password)
    if not result.ok:
        raise NotAuthenticated("wrong username or password, or the account is locked")
    assert result.user is not None
    assert result.organization is not None
    assert result.session_token is not None
    assert result.csrf_token is not None
    assert result.expires_at is not None
    secure = platform_settings(request).env != "development"
    max_age = config.session_hours * 3600
    response.set_cookie(
        config.session_cookie,
        result.session_token,
        max_age=max_age,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
    )
    response.set_cookie(
        config.csrf_cookie,
        result.csrf_token,
        max_age=max_age,
        httponly=False,
        secure=secure,
        samesite="lax",
        path="/",
    )
    org = result.organization
    return LoginResponse(
        user_id=result.user.id,
        username=result.user.username,
        organization=MeOrganization(id=org.id, name=org.name, role=org.role, cluster=org.cluster),
        csrf_token=result.csrf_token,
        expires_at=result.expires_at,
    )


@router.post("/v1/auth/logout", status_code=204)
async def logout(request: Request, session: Session) -> Response:
    """End the session (needs the CSRF token like every cookie-authenticated write)."""
    config = auth_settings(request)
    token_value = request.cookies.get(config.session_cookie)
    if not token_value:
        raise NotAuthenticated()
    header = request.headers.get(config.csrf_header, "")
    if not header or not hmac.compare_digest(
        header.encode(), request.cookies.get(config.csrf_cookie, "").encode()
    ):
        raise Forbidden("a CSRF token is required for this request")
    try:
        _, user_session = await service.authenticate_session(session, token_value)
    except NotAuthenticated:
        user_session = None
    if user_session is not None:
        if not service.csrf_matches(user_session, header):
            raise Forbidden("a CSRF token is required for this request")
        await service.logout(session, token_value)
    response = Response(status_code=204)
    response.delete_cookie(config.session_cookie, path="/")
    response.delete_cookie(config.csrf_cookie, path="/")
    return response
