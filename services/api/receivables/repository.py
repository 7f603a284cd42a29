"""All SQL of the receivable domain. Reads are scoped to the caller's organisation here, so an
object the caller is not a party to is simply not found (404, never 403)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, cast

from sqlalchemy import Select, Table, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from qilian.kit.outbox import OutboxEvent
from services.api.organizations.models import Organization
from services.api.receivables.models import (
    Receivable,
    ReceivableDispute,
    ReceivableEvent,
    ReceivablePayment,
)


def _table(model: type[SQLModel]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


def party_of(organization_id: str) -> Any:
    """The condition "the organisation is creditor, holder, debtor or financier"."""
    return or_(
        col(Receivable.creditor_id) == organization_id,
        col(Receivable.holder_id) == organization_id,
        col(Receivable.debtor_id) == organization_id,
        col(Receivable.financier_id) == organization_id,
    )


async def add(
    session: AsyncSession,
    row: Receivable | ReceivableEvent | ReceivablePayment | ReceivableDispute,
) -> None:
    session.add(row)
    await session.flush()


def _row(model: Receivable | ReceivableEvent) -> dict[str, Any]:
    table = _table(type(model))
    return {
        c.name: getattr(model, c.name)
        for c in table.columns
        if getattr(model, c.name) is not None or c.server_default is None
    }


async def insert_many(
    session: AsyncSession,
    receivables: Sequence[Receivable],
    events: Sequence[ReceivableEvent],
    outbox_rows: Sequence[tuple[str, str, dict[str, Any]]],
) -> None:
    """Batched INSERTs (executemany) of new receivables, their events and the events' outbox
    rows."""
    for model, rows in (
        (Receivable, [_row(r) for r in receivables]),
        (ReceivableEvent, [_row(e) for e in events]),
    ):
        await session.execute(insert(_table(model)), rows)
    await session.execute(
        insert(_table(OutboxEvent)),
        [
            {"event_id": event_id, "topic": topic, "payload": body}
            for event_id, topic, body in outbox_rows
        ],
    )


async def get(session: AsyncSession, receivable_id: str) -> Receivable | None:
    return await session.get(Receivable, receivable_id)


async def get_for_party(
    session: AsyncSession, receivable_id: str, organization_id: str
) -> Receivable | None:
    result = await session.execute(
        select(Receivable).where(col(Receivable.id) == receivable_id, party_of(organization_id))
    )
    return result.scalar_one_or_none()


async def visible_ids(
    session: AsyncSession, receivable_ids: Sequence[str], organization_id: str
) -> set[str]:
    """Which of ``receivable_ids`` the organisation is a party to, in one query."""
    result = await session.execute(
        select(col(Receivable.id)).where(
            col(Receivable.id).in_(list(receivable_ids)), party_of(organization_id)
        )
    )
    return set(result.scalars())


async def lock(session: AsyncSession, receivable_id: str) -> Receivable | None:
    """The receivable's row, locked until the transaction ends (``SELECT … FOR UPDATE``)."""
    result = await session.execute(
        select(Receivable)
        .where(col(Receivable.id) == receivable_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


def list_query(
    organization_id: str,
    *,
    as_party: str | None = None,
    confirmation: str | None = None,
    holding: str | None = None,
    financing: str | None = None,
    settlement: str | None = None,
    dispute: str | None = None,
    currency: str | None = None,
    cluster: str | None = None,
    due_from: date | None = None,
    due_to: date | None = None,
) -> Select[Any]:
    """The caller's receivables with the filters applied (paged by the caller)."""
    columns = {
        "creditor": col(Receivable.creditor_id),
        "holder": col(Receivable.holder_id),
        "debtor": col(Receivable.debtor_id),
        "financier": col(Receivable.financier_id),
    }
    query = select(Receivable)
    if as_party is None:
        query = query.where(party_of(organization_id))
    else:
        query = query.where(columns[as_party] == organization_id)
    equal = {
        col(Receivable.confirmation): confirmation,
        col(Receivable.holding): holding,
        col(Receivable.financing): financing,
        col(Receivable.settlement): settlement,
        col(Receivable.dispute): dispute,
        col(Receivable.currency): currency,
    }
    for column, value in equal.items():
        if value is not None:
            query = query.where(column == value)
    if due_from is not None:
        query = query.where(col(Receivable.due_date) >= due_from)
    if due_to is not None:
        query = query.where(col(Receivable.due_date) <= due_to)
    if cluster is not None:
        debtors = select(col(Organization.id)).where(col(Organization.cluster) == cluster)
        query = query.where(col(Receivable.debtor_id).in_(debtors))
    return query


async def events(session: AsyncSession, receivable_id: str) -> Sequence[ReceivableEvent]:
    result = await session.execute(
        select(ReceivableEvent)
        .where(col(ReceivableEvent.receivable_id) == receivable_id)
        .order_by(col(ReceivableEvent.seq))
    )
    return result.scalars().all()


async def events_of_many(
    session: AsyncSession, receivable_ids: Sequence[str]
) -> dict[str, list[tuple[str, int]]]:
    """The ``(event_id, seq)`` of each receivable's events in ``seq`` order, in one query; every
    asked receivable is a key (with no event, an empty list)."""
    out: dict[str, list[tuple[str, int]]] = {rid: [] for rid in receivable_ids}
    if not out:
        return out
    result = await session.execute(
        select(
            col(ReceivableEvent.receivable_id),
            col(ReceivableEvent.event_id),
            col(ReceivableEvent.seq),
        )
        .where(col(ReceivableEvent.receivable_id).in_(sorted(out)))
        .order_by(col(ReceivableEvent.receivable_id), col(ReceivableEvent.seq))
    )
    for rid, event_id, seq in result.all():
        out[rid].append((event_id, seq))
    return out


async def tree(session: AsyncSession, root_id: str) -> Sequence[Receivable]:
    """A root and every part below it, parents before children."""
    result = await session.execute(
        select(Receivable)
        .where(or_(col(Receivable.id) == root_id, col(Receivable.root_id) == root_id))
        .order_by(col(Receivable.depth), col(Receivable.created_at), col(Receivable.id))
    )
    return result.scalars().all()


async def payments(session: AsyncSession, receivable_id: str) -> Sequence[ReceivablePayment]:
    result = await session.execute(
        select(ReceivablePayment)
        .where(col(ReceivablePayment.receivable_id) == receivable_id)
        .order_by(col(ReceivablePayment.created_at), col(ReceivablePayment.id))
    )
    return result.scalars().all()


async def dispute(
    session: AsyncSession, dispute_id: str, *, refresh: bool = False
) -> ReceivableDispute | None:
    query = select(ReceivableDispute).where(col(ReceivableDispute.id) == dispute_id)
    if refresh:
        query = query.execution_options(populate_existing=True)
    result = await session.execute(query)
    return result.scalar_one_or_none()


async def disputes(session: AsyncSession, receivable_id: str) -> Sequence[ReceivableDispute]:
    result = await session.execute(
        select(ReceivableDispute)
        .where(col(ReceivableDispute.receivable_id) == receivable_id)
        .order_by(col(ReceivableDispute.opened_at))
    )
    return result.scalars().all()


async def overdue_candidates(session: AsyncSession, due_before: date, limit: int) -> list[str]:
    """Held, confirmed, unsettled receivables due before ``due_before`` (oldest first)."""
    result = await session.execute(
        select(col(Receivable.id))
        .where(
            col(Receivable.due_date) < due_before,
            col(Receivable.settlement).in_(("open", "partially_paid")),
            col(Receivable.holding) == "held",
            col(Receivable.confirmation) == "confirmed",
        )
        .order_by(col(Receivable.due_date), col(Receivable.id))
        .limit(limit)
    )
    return list(result.scalars().all())
