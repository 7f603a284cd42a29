"""All SQL of invoice intake: organisations matched by tax id, core firm terms, invoices (the
fingerprint's UNIQUE constraint decides duplicates), and bulk import jobs and rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from services.api.invoices.models import (
    CoreFirmTerms,
    Invoice,
    InvoiceImport,
    InvoiceImportRow,
)
from services.api.organizations.models import Organization


def _table(model: type[SQLModel]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


def _normalised_tax_id() -> object:
    return func.upper(func.regexp_replace(col(Organization.tax_id), "[^A-Za-z0-9]", "", "g"))


async def organizations_by_tax_ids(
    session: AsyncSession, keys: Sequence[str]
) -> list[Organization]:
    """Organisations whose tax id, normalised (upper case, letters and digits only), is one of
    ``keys`` (already normalised)."""
    if not keys:
        return []
    result = await session.execute(
        select(Organization).where(_normalised_tax_id().in_(list(keys)))  # type: ignore[attr-defined]
    )
    return list(result.scalars())


async def payment_terms_days(session: AsyncSession, organization_id: str) -> int | None:
    row = await session.get(CoreFirmTerms, organization_id)
    return row.payment_terms_days if row is not None else None


async def set_payment_terms(session: AsyncSession, organization_id: str, days: int | None) -> None:
    stmt = insert(CoreFirmTerms).values(organization_id=organization_id, payment_terms_days=days)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[col(CoreFirmTerms.organization_id)],
            set_={"payment_terms_days": days, "updated_at": func.now()},
        )
    )


async def insert_invoice(session: AsyncSession, invoice: Invoice) -> bool:
    """Insert; False when the fingerprint exists already. ``ON CONFLICT DO NOTHING`` on the
    UNIQUE constraint waits for a concurrent inserter of the same fingerprint: when that one
    commits, this insert does nothing (exactly one wins); when it rolls back, this one inserts."""
    values = {
        column.name: getattr(invoice, column.name)
        for column in Invoice.__table__.columns  # type: ignore[attr-defined]
        if column.name != "created_at"
    }
    result = await session.execute(
        insert(Invoice)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_invoices_fingerprint")
        .returning(col(Invoice.id))
    )
    return result.first() is not None


async def insert_invoices(session: AsyncSession, invoices: Sequence[Invoice]) -> set[str]:
    """:func:`insert_invoice` for many in one statement; the ids of the rows inserted."""
    if not invoices:
        return set()
    table = _table(Invoice)
    rows = [
        {c.name: getattr(invoice, c.name) for c in table.columns if c.name != "created_at"}
        for invoice in invoices
    ]
    # executemany ("insertmanyvalues"): one cached statement, batched, with RETURNING
    result = await session.execute(
        insert(table)
        .on_conflict_do_nothing(constraint="uq_invoices_fingerprint")
        .returning(table.c.id),
        rows,
    )
    return set(result.scalars())


async def by_fingerprint(session: AsyncSession, fingerprint: str) -> Invoice | None:
    result = await session.execute(select(Invoice).where(col(Invoice.fingerprint) == fingerprint))
    return result.scalar_one_or_none()


async def invoices_for_credit(
    session: AsyncSession, *, seller_tax_id: str, buyer_tax_id: str, number_keys: Sequence[str]
) -> list[Invoice]:
    """Invoices (not credit notes) of this seller on this buyer with one of these numbers."""
    result = await session.execute(
        select(Invoice).where(
            col(Invoice.seller_tax_id) == seller_tax_id,
            col(Invoice.buyer_tax_id) == buyer_tax_id,
            col(Invoice.kind) == "invoice",
            col(Invoice.number_key).in_(list(number_keys)),
        )
    )
    return list(result.scalars())


# imports ----------------------------------------------------------------------------------------


async def insert_import(session: AsyncSession, job: InvoiceImport) -> InvoiceImport:
    """The job, or the existing one of the same (organisation, sha256)."""
    stmt = (
        insert(InvoiceImport)
        .values(
            id=job.id,
            organization_id=job.organization_id,
            actor=job.actor,
            sha256=job.sha256,
            kind=job.kind,
            status=job.status,
            total=job.total,
            done=job.done,
            error=job.error,
        )
        .on_conflict_do_nothing(constraint="uq_invoice_imports_org_sha256")
    )
    await session.execute(stmt)
    result = await session.execute(
        select(InvoiceImport)
        .where(
            col(InvoiceImport.organization_id) == job.organization_id,
            col(InvoiceImport.sha256) == job.sha256,
        )
        .execution_options(populate_existing=True)
    )
    return result.scalar_one()


async def get_import(
    session: AsyncSession, import_id: str, *, lock: bool = False
) -> InvoiceImport | None:
    stmt = select(InvoiceImport).where(col(InvoiceImport.id) == import_id)
    if lock:
        stmt = stmt.with_for_update()
    result = await session.execute(stmt.execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def done_rows(session: AsyncSession, import_id: str, start: int, stop: int) -> set[int]:
    result = await session.execute(
        select(col(InvoiceImportRow.row)).where(
            col(InvoiceImportRow.import_id) == import_id,
            col(InvoiceImportRow.row) >= start,
            col(InvoiceImportRow.row) < stop,
        )
    )
    return set(result.scalars())


async def add_rows(session: AsyncSession, rows: Sequence[InvoiceImportRow]) -> None:
    if not rows:
        return
    stmt = insert(InvoiceImportRow).values(
        [
            {
                "import_id": r.import_id,
                "row": r.row,
                "name": r.name,
                "outcome": r.outcome,
                "invoice_id": r.invoice_id,
                "receivable_id": r.receivable_id,
                "reason": r.reason,
                "detail": r.detail,
            }
            for r in rows
        ]
    )
    await session.execute(stmt.on_conflict_do_nothing())


async def count_rows(session: AsyncSession, import_id: str) -> dict[str, int]:
    result = await session.execute(
        select(col(InvoiceImportRow.outcome), func.count())
        .where(col(InvoiceImportRow.import_id) == import_id)
        .group_by(col(InvoiceImportRow.outcome))
    )
    return {outcome: int(n) for outcome, n in result.all()}


async def rows_page(
    session: AsyncSession, import_id: str, after: int, limit: int
) -> list[InvoiceImportRow]:
    result = await session.execute(
        select(InvoiceImportRow)
        .where(col(InvoiceImportRow.import_id) == import_id, col(InvoiceImportRow.row) > after)
        .order_by(col(InvoiceImportRow.row))
        .limit(limit)
    )
    return list(result.scalars())
