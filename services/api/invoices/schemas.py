"""API shapes of invoice intake and bulk imports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.api.invoices.models import InvoiceImport, InvoiceImportRow
from services.api.receivables.schemas import ReceivablePublic


class InvoiceCreated(BaseModel):
    """``201``: the parsed invoice as stored and the receivable it created (or diluted)."""

    outcome: str = Field(description="created (an invoice) or diluted (a credit note)")
    invoice: dict[str, Any] = Field(description="id, sha256, fingerprint and the parsed fields")
    receivable: ReceivablePublic
    event_id: str = Field(description="the receivable event this upload recorded")


class PaymentTerms(BaseModel):
    """A core firm's payment terms: days after the issue date (null: none agreed)."""

    payment_terms_days: int | None = Field(default=None, ge=0, le=3650)


class ImportRowPublic(BaseModel):
    row: int
    name: str
    outcome: str
    invoice_id: str | None
    receivable_id: str | None
    reason: str | None
    detail: str | None

    @classmethod
    def of(cls, row: InvoiceImportRow) -> ImportRowPublic:
        return cls.model_validate(row, from_attributes=True)


class ImportPublic(BaseModel):
    """A bulk import job: progress ``done``/``total``, counts per outcome, and a page of rows
    (``rows_cursor`` pages on)."""

    id: str
    status: str
    kind: str
    sha256: str
    total: int
    done: int
    counts: dict[str, int]
    error: str | None
    created_at: datetime | None
    finished_at: datetime | None
    rows: list[ImportRowPublic]
    next_rows_cursor: str | None

    @classmethod
    def of(
        cls,
        job: InvoiceImport,
        counts: dict[str, int],
        rows: list[InvoiceImportRow],
        next_cursor: str | None,
    ) -> ImportPublic:
        return cls(
            id=job.id,
            status=job.status,
            kind=job.kind,
            sha256=job.sha256,
            total=job.total,
            done=job.done,
            counts={k: counts.get(k, 0) for k in ("created", "diluted", "duplicate", "refused")},
            error=job.error,
            created_at=job.created_at,
            finished_at=job.finished_at,
            rows=[ImportRowPublic.of(r) for r in rows],
            next_rows_cursor=next_cursor,
        )
