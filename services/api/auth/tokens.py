"""Access tokens: JWS compact, ``alg`` pinned to EdDSA, RFC 9068 claims.

Header ``{"alg": "EdDSA", "typ": "at+jwt", "kid": …}``; claims ``iss``, ``aud``, ``sub`` (the
client id), ``client_id``, ``org``, ``role``, ``scope``, ``iat``, ``nbf``, ``exp``, ``jti``.
Verification accepts nothing but EdDSA with a live key named by ``kid``, so ``alg: none``, HS256
made with the public key, an unknown or retired ``kid``, a wrong ``iss``/``aud``, and an expired
or not-yet-valid token are all refused the same way (401).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.auth import keys
from services.api.auth.errors import NotAuthenticated
from services.api.auth.models import Principal, PrincipalKind, Scope
from services.api.auth.settings import AuthSettings
from services.api.organizations.models import Role

TOKEN_TYPE = "at+jwt"  # noqa: S105 - the RFC 9068 media type, not a secret
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", "org", "role", "scope"]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


async def issue(
    session: AsyncSession,
    *,
    secret_key: str,
    config: AuthSettings,
    client_id: str,
    organization_id: str,
    role: Role,
    scopes: frozenset[Scope],
) -> IssuedToken:
    key = await keys.signing_key(session, secret_key)
    now = datetime.now(UTC).replace(microsecond=0)
    scope = " ".join(sorted(s.value for s in scopes))
    claims = {
        "iss": config.issuer,
        "aud": config.audience,
        "sub": client_id,
        "client_id": client_id,
        "org": organization_id,
        "role": role.value,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=config.access_token_seconds),
        "jti": secrets.token_urlsafe(16),
    }
    token = jwt.encode(
        claims,
        key.private_key,
        algorithm=keys.ALGORITHM,
        headers={"kid": key.kid, "typ": TOKEN_TYPE},
    )
    return IssuedToken(token, config.access_token_seconds, scope)


async def verify(session: AsyncSession, token: str, config: AuthSettings) -> Principal:
    """The principal a token names, or :class:`NotAuthenticated`; client status is checked later."""
    refused = NotAuthenticated("the access token is invalid or expired", error="invalid_token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise refused from None
    kid = header.get("kid")
    if header.get("alg") != keys.ALGORITHM or header.get("typ") != TOKEN_TYPE:
        raise refused
    if not isinstance(kid, str) or len(kid) > 40:
        raise refused
    public = await keys.verification_key(session, kid)
    if public is None:
        raise refused
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public,
            algorithms=[keys.ALGORITHM],
            audience=config.audience,
            issuer=config.issuer,
            leeway=config.clock_leeway_seconds,
            options={"require": REQUIRED_CLAIMS},
        )
        role = Role(claims["role"])
        scopes = frozenset(Scope(s) for s in str(claims["scope"]).split())
    except (jwt.PyJWTError, ValueError):
        raise refused from None
    return Principal(
        kind=PrincipalKind.client,
        subject=str(claims["sub"]),
        organization_id=str(claims["org"]),
        role=role,
        scopes=scopes,
        token_id=str(claims["jti"]),
    )
