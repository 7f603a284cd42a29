"""Tables of identity and access, and the :class:`Principal` every request resolves to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from services.api.organizations.models import Role

READ_ONLY_ROLES = frozenset({Role.auditor, Role.regulator})


class Scope(StrEnum):
    read = "read"
    write = "write"


def scopes_for(role: Role) -> frozenset[Scope]:
    """What a token of this role may ever carry: read-only roles never get ``write``."""
    return frozenset({Scope.read}) if role in READ_ONLY_ROLES else frozenset(Scope)


class PrincipalKind(StrEnum):
    client = "client"
    user = "user"


@dataclass(frozen=True)
class Principal:
    """Who is calling: one organisation, its role, and the client or user acting for it."""

    kind: PrincipalKind
    subject: str  # client_id or user_id
    organization_id: str
    role: Role
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    via_cookie: bool = False
    token_id: str | None = None  # the JWT's jti

    @property
    def client_id(self) -> str | None:
        return self.subject if self.kind == PrincipalKind.client else None

    @property
    def user_id(self) -> str | None:
        return self.subject if self.kind == PrincipalKind.user else None

    @property
    def is_operator(self) -> bool:
        return self.role == Role.operator

    @property
    def read_only(self) -> bool:
        return self.role in READ_ONLY_ROLES

    def key(self) -> str:
        """A stable name for scoping per-principal state (idempotency keys, rate limits)."""
        return f"{self.kind.value}:{self.subject}"


class SigningKey(SQLModel, table=True):
    """An Ed25519 key that signs access tokens; the private half is encrypted with the secret key.

    The newest key not retired signs; every key not retired verifies and is published in the JWKS.
    """

    __tablename__ = "signing_keys"
    __table_args__ = {"schema": "platform"}

    kid: str = Field(sa_column=Column(String(40), primary_key=True))
    algorithm: str = Field(sa_column=Column(String(16), nullable=False))
    public_jwk: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    private_key_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    retired_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class User(SQLModel, table=True):
    """A person of an organisation; only an Argon2id hash of the password is kept."""

    __tablename__ = "users"
    __table_args__ = {"schema": "platform"}

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    organization_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("platform.organizations.id"), nullable=False, index=True
        )
    )
    username: str = Field(sa_column=Column(String(100), nullable=False, unique=True))
    display_name: str = Field(sa_column=Column(String(200), nullable=False))
    password_hash: str = Field(sa_column=Column(String(200), nullable=False))
    failed_logins: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    locked_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    disabled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class UserSession(SQLModel, table=True):
    """A logged-in browser: the cookie's token and the CSRF token, both kept as SHA-256 only."""

    __tablename__ = "user_sessions"
    __table_args__ = {"schema": "platform"}

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.users.id"), nullable=False, index=True)
    )
    csrf_hash: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a (principal, ``Idempotency-Key``); its body encrypted at rest."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("ix_idempotency_keys_created_at", "created_at"),
        {"schema": "platform"},
    )

    principal: str = Field(sa_column=Column(String(80), primary_key=True))
    key: str = Field(sa_column=Column(String(255), primary_key=True))
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    method: str = Field(sa_column=Column(String(10), nullable=False))
    path: str = Field(sa_column=Column(Text, nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer))
    response_headers: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    response_body: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    completed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # set inside the first request's own transaction: its effect is committed even when its
    # answer was never stored (the process died in between), so the key is not run again
    committed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class RateLimitCounter(SQLModel, table=True):
    """Requests of one bucket (``token:ip:…``, ``write:client:…``) in one fixed window."""

    __tablename__ = "rate_limit_counters"
    __table_args__ = (
        Index("ix_rate_limit_counters_window_start", "window_start"),
        {"schema": "platform"},
    )

    bucket: str = Field(sa_column=Column(String(200), primary_key=True))
    window_start: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    hits: int = Field(sa_column=Column(BigInteger, nullable=False))
