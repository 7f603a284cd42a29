"""Tables of invoice intake.

- ``platform.invoices``: every accepted invoice or credit note, with its normalised fingerprint
  under a UNIQUE constraint (the database, not a check-then-insert, refuses a duplicate whatever
  the concurrency) and the sha256 of the original in the blob store.
- ``platform.core_firm_terms``: per core firm, the payment terms (days after issue) that give a due
  date to invoices that carry none.
- ``platform.invoice_imports`` and ``platform.invoice_import_rows``: bulk import jobs, unique per
  (organisation, sha256 of the upload) so that re-submitting the same import is the same job.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class Invoice(SQLModel, table=True):
    """An accepted invoice or credit note (``inv_…``)."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("fingerprint", name="uq_invoices_fingerprint"),
        CheckConstraint("kind IN ('invoice', 'credit_note')", name="kind_known"),
        Index("ix_invoices_organization_id", "organization_id", "id"),
        Index("ix_invoices_parties_number", "seller_tax_id", "buyer_tax_id", "number_key"),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    organization_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    kind: str = Field(sa_column=Column(String(20), nullable=False))
    format: str = Field(sa_column=Column(String(20), nullable=False))
    invoice_number: str = Field(sa_column=Column(String(200), nullable=False))
    number_key: str = Field(sa_column=Column(String(200), nullable=False))  # normalised number
    issue_date: date = Field(sa_column=Column(Date, nullable=False))
    due_date: date | None = Field(default=None, sa_column=Column(Date))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    seller_tax_id: str = Field(sa_column=Column(String(64), nullable=False))
    buyer_tax_id: str = Field(sa_column=Column(String(64), nullable=False))
    sha256: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    receivable_id: str | None = Field(default=None, sa_column=Column(String(40), index=True))
    parsed: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class CoreFirmTerms(SQLModel, table=True):
    """A core firm's intake configuration: payment terms in days (null: none agreed)."""

    __tablename__ = "core_firm_terms"
    __table_args__ = (
        CheckConstraint(
            "payment_terms_days IS NULL OR payment_terms_days BETWEEN 0 AND 3650",
            name="payment_terms_days_range",
        ),
        {"schema": "platform"},
    )

    organization_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), primary_key=True)
    )
    payment_terms_days: int | None = Field(default=None, sa_column=Column(Integer))
    updated_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class ImportStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"  # the upload as a whole could not be read (e.g. a corrupt ZIP)


class RowOutcome(StrEnum):
    created = "created"
    diluted = "diluted"  # a credit note that reduced an existing receivable
    duplicate = "duplicate"
    refused = "refused"


class InvoiceImport(SQLModel, table=True):
    """A bulk import job (``imp_…``): the upload is kept in the blob store by its sha256."""

    __tablename__ = "invoice_imports"
    __table_args__ = (
        UniqueConstraint("organization_id", "sha256", name="uq_invoice_imports_org_sha256"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status_known"),
        CheckConstraint("done >= 0 AND done <= total", name="done_within_total"),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    organization_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    actor: str = Field(sa_column=Column(String(80), nullable=False))
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    kind: str = Field(sa_column=Column(String(10), nullable=False))
    status: str = Field(sa_column=Column(String(10), nullable=False))
    total: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    done: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(String(1000)))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class InvoiceImportRow(SQLModel, table=True):
    """The outcome of one row (CSV/NDJSON line, ZIP member) of an import."""

    __tablename__ = "invoice_import_rows"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('created', 'diluted', 'duplicate', 'refused')", name="outcome_known"
        ),
        {"schema": "platform"},
    )

    import_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.invoice_imports.id"), primary_key=True)
    )
    row: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    name: str = Field(sa_column=Column(String(300), nullable=False))
    outcome: str = Field(sa_column=Column(String(20), nullable=False))
    invoice_id: str | None = Field(default=None, sa_column=Column(String(40)))
    receivable_id: str | None = Field(default=None, sa_column=Column(String(40)))
    reason: str | None = Field(default=None, sa_column=Column(String(64)))
    detail: str | None = Field(default=None, sa_column=Column(String(1000)))
