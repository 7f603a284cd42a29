"""Business rules of the organisation directory: registration and client credentials."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.cn import uscc
from stdnum.exceptions import ValidationError

from qilian.kit import ids
from qilian.kit.errors import Conflict, InvalidInput
from services.api.organizations import repository
from services.api.organizations.models import (
    ApiClient,
    Cluster,
    Organization,
    OrganizationBase,
    Role,
)


def normalise_tax_id(scheme: str, tax_id: str) -> str:
    """A USCC is checked with its check character; other schemes are stored as given, trimmed."""
    if scheme == "CN-USCC":
        try:
            return str(uscc.validate(tax_id))
        except ValidationError as exc:
            raise InvalidInput(
                f"tax_id is not a valid Unified Social Credit Code: {exc}",
                errors=[{"field": "tax_id", "in": "body", "message": str(exc)}],
            ) from None
    return tax_id.strip()


async def register(session: AsyncSession, data: OrganizationBase) -> Organization:
    tax_id = normalise_tax_id(data.tax_scheme, data.tax_id)
    if data.role == Role.core_firm and data.cluster is None:
        raise InvalidInput(
            "a core firm needs a cluster",
            errors=[{"field": "cluster", "in": "body", "message": "required for core firms"}],
        )
    if await repository.get_by_tax_id(session, data.tax_scheme, tax_id) is not None:
        raise Conflict("an organisation with this tax id is registered already")
    org = Organization(
        id=ids.new_id("org"),
        name=data.name.strip(),
        role=Role(data.role),
        tax_id=tax_id,
        tax_scheme=data.tax_scheme,
        cluster=Cluster(data.cluster) if data.cluster else None,
        signing_address=data.signing_address,
        green=data.green,
    )
    await repository.add(session, org)
    return org


@dataclass(frozen=True)
class IssuedClient:
    client_id: str
    client_secret: str  # shown once, never stored


def hash_secret(secret: str) -> str:
    """Client secrets are 256-bit random: one SHA-256 suffices (no password stretching needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)


async def issue_client(session: AsyncSession, organization_id: str) -> IssuedClient:

    client_id = ids.new_id("cli")
    secret = secrets.token_urlsafe(32)
    await repository.add(
        session,
        ApiClient(
            client_id=client_id, organization_id=organization_id, secret_hash=hash_secret(secret)
        ),
    )
    return IssuedClient(client_id, secret)
