"""Who hears about what in the marketplace: the audience of each webhook event is decided here
and nowhere else, so a bank's offer events reach that bank only (rule 4)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.api.organizations.models import Organization, Role
from services.api.webhooks import service as webhooks


async def publish(
    session: AsyncSession, organization_ids: Iterable[str], event_type: str, data: dict[str, Any]
) -> int:
    """Queue ``event_type`` for the webhook endpoints of exactly these organisations."""
    return await webhooks.publish(session, organization_ids, event_type, data)


async def publish_each(
    session: AsyncSession, event_type: str, items: Iterable[tuple[str, dict[str, Any]]]
) -> int:
    """One event per organisation, each with its own data (each bank hears of its own offer)."""
    return await webhooks.publish_each(session, event_type, items)


async def to_banks(session: AsyncSession, event_type: str, data: dict[str, Any]) -> int:
    """An event every bank may know (a request opened for bids: no bank's data in it)."""
    banks = await session.execute(
        select(col(Organization.id)).where(col(Organization.role) == Role.bank.value)
    )
    return await publish(session, list(banks.scalars()), event_type, data)
