"""All SQL of identity and access. Queries that return an organisation's private objects take the
:class:`Principal` and are scoped to what it may see: the operator sees every organisation's
credentials, any other principal only its own organisation's; nothing else is ever returned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from services.api.auth.models import Principal, User, UserSession
from services.api.organizations.models import ApiClient, Organization


def _own_or_operator(principal: Principal, organization_column: Any) -> ColumnElement[bool]:
    if principal.is_operator:
        return true()
    return col(organization_column) == principal.organization_id


def visible_clients(principal: Principal, organization_id: str) -> Select[Any]:
    """The API clients of one organisation that this principal may see."""
    return select(ApiClient).where(
        col(ApiClient.organization_id) == organization_id,
        _own_or_operator(principal, ApiClient.organization_id),
    )


async def visible_organization_private(
    session: AsyncSession, principal: Principal, organization_id: str
) -> Organization | None:
    """The organisation, when the principal may see its private side (credentials, users)."""
    result = await session.execute(
        select(Organization).where(
            col(Organization.id) == organization_id,
            _own_or_operator(principal, Organization.id),
        )
    )
    return result.scalar_one_or_none()


async def visible_client(
    session: AsyncSession, principal: Principal, organization_id: str, client_id: str
) -> ApiClient | None:
    result = await session.execute(
        visible_clients(principal, organization_id)
        .where(col(ApiClient.client_id) == client_id)
        .with_for_update()
    )
    client: ApiClient | None = result.scalar_one_or_none()
    return client


async def get_client(session: AsyncSession, client_id: str) -> ApiClient | None:
    return await session.get(ApiClient, client_id)


async def get_organization(session: AsyncSession, organization_id: str) -> Organization | None:
    return await session.get(Organization, organization_id)


async def user_by_username(session: AsyncSession, username: str, *, lock: bool) -> User | None:
    query = select(User).where(col(User.username) == username)
    result = await session.execute(query.with_for_update() if lock else query)
    return result.scalar_one_or_none()


async def live_session(
    session: AsyncSession, token_hash: str, now: datetime
) -> tuple[UserSession, User, Organization] | None:
    result = await session.execute(
        select(UserSession, User, Organization)
        .join(User, col(User.id) == col(UserSession.user_id))
        .join(Organization, col(Organization.id) == col(User.organization_id))
        .where(
            col(UserSession.token_hash) == token_hash,
            col(UserSession.revoked_at).is_(None),
            col(UserSession.expires_at) > now,
            col(User.disabled_at).is_(None),
        )
    )
    row = result.one_or_none()
    return None if row is None else (row[0], row[1], row[2])


async def add(session: AsyncSession, row: Any) -> None:
    session.add(row)
    await session.flush()
