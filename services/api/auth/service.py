"""Business rules of identity and access: the client-credentials grant, resolving a request's
credentials to a :class:`Principal`, client secrets (issue, rotate, revoke), people and sessions.

Every change appends to the audit log in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit import ids
from qilian.kit.errors import Conflict, InvalidInput, NotFound
from services.api.audit import service as audit
from services.api.audit.models import Outcome
from services.api.auth import repository, tokens
from services.api.auth.errors import InvalidClient, NotAuthenticated, OAuthInvalidRequest
from services.api.auth.models import (
    Principal,
    PrincipalKind,
    Scope,
    User,
    UserSession,
    scopes_for,
)
from services.api.auth.settings import AuthSettings
from services.api.organizations import service as org_service
from services.api.organizations.models import ApiClient, Organization, Role

_hasher = PasswordHasher()  # Argon2id, RFC 9106 low-memory profile (argon2-cffi's default)
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- machine clients --------------------------------------------------------------------------


def requested_scopes(scope: str | None, allowed: frozenset[Scope]) -> frozenset[Scope]:
    if not scope:
        return allowed
    try:
        wanted = frozenset(Scope(s) for s in scope.split())
    except ValueError:
        raise OAuthInvalidRequest("invalid_scope", f"unknown scope in {scope!r}") from None
    if not wanted <= allowed:
        raise OAuthInvalidRequest("invalid_scope", "this client may not have the scope requested")
    return wanted


async def client_credentials_grant(
    session: AsyncSession,
    *,
    secret_key: str,
    config: AuthSettings,
    client_id: str,
    client_secret: str,
    scope: str | None,
) -> tokens.IssuedToken:
    client = await repository.get_client(session, client_id) if len(client_id) <= 40 else None
    if client is None:
        org_service.secret_matches(client_secret, "0" * 64)  # same work for unknown ids
        raise InvalidClient()
    if not org_service.secret_matches(client_secret, client.secret_hash):
        raise InvalidClient()
    if client.revoked_at is not None:
        raise InvalidClient()
    org = await repository.get_organization(session, client.organization_id)
    if org is None:
        raise InvalidClient()
    return await tokens.issue(
        session,
        secret_key=secret_key,
        config=config,
        client_id=client.client_id,
        organization_id=org.id,
        role=Role(org.role),
        scopes=requested_scopes(scope, scopes_for(Role(org.role))),
    )


async def authenticate_bearer(session: AsyncSession, token: str, config: AuthSettings) -> Principal:
    """A valid token of a client that is still live (revocation takes effect at once)."""
    principal = await tokens.verify(session, token, config)
    client = await repository.get_client(session, principal.subject)
    if (
        client is None
        or client.revoked_at is not None
        or client.organization_id != principal.organization_id
    ):
        raise NotAuthenticated("the access token's client is revoked", error="invalid_token")
    return principal


@dataclass(frozen=True)
class ClientSecret:
    client_id: str
    organization_id: str
    client_secret: str  # shown once, never stored


async def issue_client(
    session: AsyncSession, actor: Principal | audit.Actor, organization_id: str
) -> ClientSecret:
    if await repository.get_organization(session, organization_id) is None:
        raise NotFound("no such organisation")
    issued = await org_service.issue_client(session, organization_id)
    await audit.append(
        session,
        actor,
        "client.issued",
        object_type="api_client",
        object_id=issued.client_id,
        details={"organization_id": organization_id},
    )
    return ClientSecret(issued.client_id, organization_id, issued.client_secret)


async def _visible_client(
    session: AsyncSession, principal: Principal, organization_id: str, client_id: str
) -> ApiClient:
    client = await repository.visible_client(session, principal, organization_id, client_id)
    if client is None:
        raise NotFound("no such client")
    return client


async def rotate_client_secret(
    session: AsyncSession, principal: Principal, organization_id: str, client_id: str
) -> ClientSecret:
    """A new secret; the old one stops working at once (tokens already issued run out)."""
    client = await _visible_client(session, principal, organization_id, client_id)
    if client.revoked_at is not None:
        raise Conflict("the client is revoked")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = org_service.hash_secret(secret)
    await session.flush()
    await audit.append(
        session,
        principal,
        "client.rotated",
        object_type="api_client",
        object_id=client_id,
        details={"organization_id": organization_id},
    )
    return ClientSecret(client_id, organization_id, secret)


async def revoke_client(
    session: AsyncSession, principal: Principal, organization_id: str, client_id: str
) -> ApiClient:
    """Refuse the client's secret and every token it holds, from the next request on."""
    client = await _visible_client(session, principal, organization_id, client_id)
    if client.revoked_at is None:
        client.revoked_at = datetime.now(UTC)
        await session.flush()
        await audit.append(
            session,
            principal,
            "client.revoked",
            object_type="api_client",
            object_id=client_id,
            details={"organization_id": organization_id},
        )
    return client


# --- people -----------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


MIN_PASSWORD_LENGTH = 12


async def create_user(
    session: AsyncSession,
    actor: Principal | audit.Actor,
    organization_id: str,
    username: str,
    password: str,
    display_name: str | None = None,
) -> User:
    if await repository.get_organization(session, organization_id) is None:
        raise NotFound("no such organisation")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password needs at least {MIN_PASSWORD_LENGTH} characters",
            errors=[{"field": "password", "in": "body", "message": "too short"}],
        )
    username = username.strip().lower()
    if await repository.user_by_username(session, username, lock=False) is not None:
        raise Conflict("this username is taken")
    user = User(
        id=ids.new_id("usr"),
        organization_id=organization_id,
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
    )
    await repository.add(session, user)
    await audit.append(
        session,
        actor,
        "user.created",
        object_type="user",
        object_id=user.id,
        details={"organization_id": organization_id, "username": username},
    )
    return user


@dataclass(frozen=True)
class LoginResult:
    """``session_token`` and ``csrf_token`` are set only on success."""

    ok: bool
    user: User | None = None
    organization: Organization | None = None
    session_token: str | None = None
    csrf_token: str | None = None
    expires_at: datetime | None = None


def lockout_seconds(failures: int, config: AuthSettings) -> int:
    """Nothing below the threshold, then doubling from the base up to the maximum."""
    if failures < config.lockout_threshold:
        return 0
    doubling = min(failures - config.lockout_threshold, 20)
    return int(min(config.lockout_base_seconds * 2**doubling, config.lockout_max_seconds))


async def login(
    session: AsyncSession, config: AuthSettings, username: str, password: str
) -> LoginResult:
    """Check a password; on failure count it (and lock the account past the threshold).

    A wrong password, an unknown user, a disabled or a locked account look the same to the caller.
    The caller commits the result either way, so failures are counted and audited.
    """
    now = datetime.now(UTC)
    user = await repository.user_by_username(session, username.strip().lower(), lock=True)
    if user is None:
        _password_matches(_DUMMY_HASH, password)
        await audit.append(
            session,
            audit.ANONYMOUS,
            "user.login",
            outcome=Outcome.failure,
            details={"reason": "unknown user"},
        )
        return LoginResult(ok=False)
    locked = user.locked_until is not None and user.locked_until > now
    matches = _password_matches(user.password_hash, password)
    actor = audit.Actor("user", user.id, user.organization_id)
    if locked or not matches or user.disabled_at is not None:
        if not locked:
            user.failed_logins += 1
            seconds = lockout_seconds(user.failed_logins, config)
            if seconds:
                user.locked_until = now + timedelta(seconds=seconds)
        reason = "locked" if locked else "disabled" if user.disabled_at else "wrong password"
        await session.flush()
        await audit.append(
            session,
            actor,
            "user.login",
            object_type="user",
            object_id=user.id,
            outcome=Outcome.failure,
            details={"reason": reason},
        )
        return LoginResult(ok=False, user=user)
    user.failed_logins, user.locked_until = 0, None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + timedelta(hours=config.session_hours)
    await repository.add(
        session,
        UserSession(
            token_hash=sha256_hex(token),
            user_id=user.id,
            csrf_hash=sha256_hex(csrf),
            created_at=now,
            expires_at=expires,
        ),
    )
    org = await repository.get_organization(session, user.organization_id)
    await audit.append(session, actor, "user.login", object_type="user", object_id=user.id)
    return LoginResult(True, user, org, token, csrf, expires)


async def authenticate_session(
    session: AsyncSession, session_token: str
) -> tuple[Principal, UserSession]:
    found = await repository.live_session(session, sha256_hex(session_token), datetime.now(UTC))
    if found is None:
        raise NotAuthenticated("the session is invalid or expired")
    user_session, user, org = found
    principal = Principal(
        kind=PrincipalKind.user,
        subject=user.id,
        organization_id=org.id,
        role=Role(org.role),
        scopes=scopes_for(Role(org.role)),
        via_cookie=True,
    )
    return principal, user_session


def csrf_matches(user_session: UserSession, csrf_token: str) -> bool:
    return hmac.compare_digest(sha256_hex(csrf_token), user_session.csrf_hash)


async def logout(session: AsyncSession, session_token: str) -> None:
    token_hash = sha256_hex(session_token)
    result = await session.execute(
        update(UserSession)
        .where(col(UserSession.token_hash) == token_hash, col(UserSession.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC))
        .returning(col(UserSession.user_id))
    )
    user_id = result.scalar_one_or_none()
    if user_id is not None:
        await audit.append(
            session,
            audit.Actor("user", user_id),
            "user.logout",
            object_type="user",
            object_id=user_id,
        )
