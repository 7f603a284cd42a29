"""The few reads the pages need beyond the domains' own: organisation names to show beside ids,
the suppliers a receivable may be transferred to, and a core firm's payables by due date."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.api.organizations.models import Organization, Role
from services.api.receivables import repository as receivables_repository
from services.api.receivables.models import Confirmation, Receivable, Settlement


async def names(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    result = await session.execute(
        select(col(Organization.id), col(Organization.name)).where(col(Organization.id).in_(wanted))
    )
    return {row[0]: row[1] for row in result.all()}


async def suppliers(
    session: AsyncSession, except_id: str, limit: int = 500
) -> Sequence[Organization]:
    result = await session.execute(
        select(Organization)
        .where(col(Organization.role) == Role.supplier.value, col(Organization.id) != except_id)
        .order_by(col(Organization.name))
        .limit(limit)
    )
    return result.scalars().all()


UNSETTLED = (Settlement.open.value, Settlement.partially_paid.value, Settlement.overdue.value)


async def payables(session: AsyncSession, debtor_id: str, limit: int) -> Sequence[Receivable]:
    """The core firm's confirmed, unsettled payables in due-date order."""
    query = receivables_repository.list_query(
        debtor_id, as_party="debtor", confirmation=Confirmation.confirmed.value
    )
    result = await session.execute(
        query.where(
            col(Receivable.settlement).in_(UNSETTLED), col(Receivable.open_amount_minor) > 0
        )
        .order_by(col(Receivable.due_date), col(Receivable.id))
        .limit(limit)
    )
    return list(result.scalars().all())


async def pending(session: AsyncSession, debtor_id: str, limit: int) -> Sequence[Receivable]:
    """The core firm's confirmation queue in due-date order."""
    query = receivables_repository.list_query(
        debtor_id, as_party="debtor", confirmation=Confirmation.pending.value
    )
    result = await session.execute(
        query.order_by(col(Receivable.due_date), col(Receivable.id)).limit(limit)
    )
    return list(result.scalars().all())
