"""API shapes of identity and access."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.api.organizations.models import Cluster, Role


class TokenRequest(BaseModel):
    """OAuth 2.0 client-credentials request (form or JSON)."""

    model_config = ConfigDict(extra="forbid")

    grant_type: Literal["client_credentials"]
    client_id: str = Field(min_length=1, max_length=100)
    client_secret: str = Field(min_length=1, max_length=200)
    scope: str | None = Field(default=None, max_length=200)


class TokenResponse(BaseModel):
    """RFC 6749 §5.1 access token response."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int
    scope: str


class MeOrganization(BaseModel):
    id: str
    name: str
    role: Role
    cluster: Cluster | None


class Me(BaseModel):
    """The caller: its organisation and role, and the client or user acting for it."""

    kind: Literal["client", "user"]
    client_id: str | None
    user_id: str | None
    organization_id: str
    role: Role
    scopes: list[str]
    organization: MeOrganization


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)


class LoginResponse(BaseModel):
    """Also set: the session cookie (HttpOnly) and the CSRF cookie (readable by the page)."""

    user_id: str
    username: str
    organization: MeOrganization
    csrf_token: str
    expires_at: datetime


class UserCreate(BaseModel):
    """A person of an organisation (operator only)."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=3, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")
    password: str = Field(min_length=12, max_length=1000)
    display_name: str | None = Field(default=None, max_length=200)


class UserPublic(BaseModel):
    id: str
    organization_id: str
    username: str
    display_name: str
    created_at: datetime | None


class ApiClientPublic(BaseModel):
    """A machine client, without any secret."""

    client_id: str
    organization_id: str
    created_at: datetime | None
    revoked_at: datetime | None


class ClientSecretPublic(BaseModel):
    """A client's credentials: the secret is shown this once and never again."""

    client_id: str
    organization_id: str
    client_secret: str
