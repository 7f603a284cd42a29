"""All SQL of the organisation directory."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.api.organizations.models import ApiClient, Organization


async def get_by_tax_id(session: AsyncSession, scheme: str, tax_id: str) -> Organization | None:
    result = await session.execute(
        select(Organization).where(
            col(Organization.tax_scheme) == scheme, col(Organization.tax_id) == tax_id
        )
    )
    return result.scalar_one_or_none()


async def add(session: AsyncSession, row: Organization | ApiClient) -> None:
    session.add(row)
    await session.flush()
