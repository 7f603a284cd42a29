"""Tables of the receivable domain: ``platform.receivables`` and ``platform.receivable_events``.

A receivable keeps each lifecycle axis in a column of its own (ARCHITECTURE.md, "Lifecycles"):
confirmation, financing, settlement and dispute change independently, each by an explicit event.
Anchoring is not stored here: the ledger keeps it, and the API asks the ledger when it shows a
receivable. Money is integer minor units beside an ISO 4217 code; the database checks what must
always hold (positive face value, open amount within it, due date not before issue date, known
states) and ``(receivable_id, seq)`` is unique, so an event history can have no fork.
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
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from qilian.kit.db import one_of


class Confirmation(StrEnum):
    pending = "pending"
    confirmed = "confirmed"
    rejected = "rejected"
    cancelled = "cancelled"


class Financing(StrEnum):
    unfinanced = "unfinanced"
    in_auction = "in_auction"
    financed = "financed"


class Settlement(StrEnum):
    open = "open"
    partially_paid = "partially_paid"
    paid = "paid"
    overdue = "overdue"
    written_off = "written_off"


class Dispute(StrEnum):
    none = "none"
    open = "open"
    resolved = "resolved"


class Holding(StrEnum):
    held = "held"  # the holder holds it: it may be split, transferred, financed, paid
    split_up = "split"  # its open amount moved to its children (parts)
    transferred = "transferred"  # its open amount moved to one child held by another supplier


class DueDateSource(StrEnum):
    invoice = "invoice"  # BT-9 of the invoice
    payment_terms = "payment_terms"  # issue date + the core firm's payment_terms_days


class Receivable(SQLModel, table=True):
    """A supplier's claim on a core firm for one invoice's amount due (``rcv_…``)."""

    __tablename__ = "receivables"
    __table_args__ = (
        CheckConstraint("face_value_minor > 0", name="face_value_positive"),
        CheckConstraint(
            "open_amount_minor >= 0 AND open_amount_minor <= face_value_minor",
            name="open_amount_within_face_value",
        ),
        CheckConstraint("due_date >= issue_date", name="due_not_before_issue"),
        CheckConstraint("event_seq >= 0", name="event_seq_not_negative"),
        CheckConstraint(one_of("confirmation", Confirmation), name="confirmation_known"),
        CheckConstraint(one_of("financing", Financing), name="financing_known"),
        CheckConstraint(one_of("settlement", Settlement), name="settlement_known"),
        CheckConstraint(one_of("dispute", Dispute), name="dispute_known"),
        CheckConstraint(one_of("due_date_source", DueDateSource), name="due_date_source_known"),
        CheckConstraint(one_of("holding", Holding), name="holding_known"),
        CheckConstraint(
            "paid_minor >= 0 AND diluted_minor >= 0 AND moved_minor >= 0",
            name="amounts_not_negative",
        ),
        CheckConstraint(
            "open_amount_minor + paid_minor + diluted_minor + moved_minor = face_value_minor",
            name="value_conserved",
        ),
        CheckConstraint(
            "holding = 'held' OR (financing = 'unfinanced' AND open_amount_minor = 0)",
            name="only_held_open_or_financed",
        ),
        CheckConstraint("(parent_id IS NULL) = (root_id IS NULL)", name="root_with_parent"),
        CheckConstraint("tier >= 1 AND depth >= 0", name="tier_and_depth_valid"),
        Index(
            "uq_receivables_root_invoice",
            "invoice_id",
            unique=True,
            postgresql_where=text("parent_id IS NULL"),
        ),
        Index("ix_receivables_root_id", "root_id"),
        Index("ix_receivables_parent_id", "parent_id"),
        Index("ix_receivables_creditor_id", "creditor_id", "id"),
        Index("ix_receivables_holder_id", "holder_id", "id"),
        Index("ix_receivables_debtor_id", "debtor_id", "id"),
        Index(
            "ix_receivables_financier_id",
            "financier_id",
            "id",
            postgresql_where=text("financier_id IS NOT NULL"),
        ),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    invoice_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.invoices.id"), nullable=False)
    )  # a part shares its root's invoice; only roots are unique per invoice
    parent_id: str | None = Field(
        default=None, sa_column=Column(String(40), ForeignKey("platform.receivables.id"))
    )
    root_id: str | None = Field(
        default=None, sa_column=Column(String(40), ForeignKey("platform.receivables.id"))
    )  # the receivable the intake created, for every part below it (None for the root)
    tier: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    depth: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    holding: str = Field(
        default=Holding.held.value,
        sa_column=Column(String(20), nullable=False, server_default="held"),
    )
    creditor_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    holder_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    debtor_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    financier_id: str | None = Field(
        default=None, sa_column=Column(String(40), ForeignKey("platform.organizations.id"))
    )  # the bank of its accepted financing (a party while that financing lives)
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    face_value_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    open_amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    paid_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )  # payments applied to it
    diluted_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )  # credit notes
    moved_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )  # passed on to its parts by a split or transfer
    issue_date: date = Field(sa_column=Column(Date, nullable=False))
    due_date: date = Field(sa_column=Column(Date, nullable=False, index=True))
    due_date_source: str = Field(sa_column=Column(String(20), nullable=False))
    confirmation: str = Field(
        default=Confirmation.pending.value, sa_column=Column(String(20), nullable=False)
    )
    financing: str = Field(
        default=Financing.unfinanced.value, sa_column=Column(String(20), nullable=False)
    )
    settlement: str = Field(
        default=Settlement.open.value, sa_column=Column(String(20), nullable=False)
    )
    dispute: str = Field(default=Dispute.none.value, sa_column=Column(String(20), nullable=False))
    event_seq: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    updated_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class ReceivableEvent(SQLModel, table=True):
    """One transition of a receivable (``evt_…``); its outbox event carries the same id."""

    __tablename__ = "receivable_events"
    __table_args__ = (
        UniqueConstraint("receivable_id", "seq", name="uq_receivable_events_receivable_seq"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        {"schema": "platform"},
    )

    event_id: str = Field(sa_column=Column(String(64), primary_key=True))
    receivable_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.receivables.id"), nullable=False)
    )
    seq: int = Field(sa_column=Column(Integer, nullable=False))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    actor: str = Field(sa_column=Column(String(128), nullable=False))
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))


class PaymentKind(StrEnum):
    full = "full"  # settles the open amount exactly
    partial = "partial"  # less than the open amount; the rest stays open
    short = "short"  # less than the open amount, declared final by the debtor; the rest stays owed
    over = "over"  # more than the open amount; the excess is kept as unapplied


class ReceivablePayment(SQLModel, table=True):
    """A payment by the debtor (``pay_…``): applied to the open amount, any excess kept unapplied
    (to refund), owed to ``payee_id`` (the holder, or the financier when financed)."""

    __tablename__ = "receivable_payments"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(
            "applied_minor >= 0 AND unapplied_minor >= 0 "
            "AND applied_minor + unapplied_minor = amount_minor",
            name="allocation_complete",
        ),
        CheckConstraint(one_of("kind", PaymentKind), name="kind_known"),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    receivable_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("platform.receivables.id"), nullable=False, index=True
        )
    )
    payer_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    payee_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    applied_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    unapplied_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(sa_column=Column(String(20), nullable=False))
    paid_at: date = Field(sa_column=Column(Date, nullable=False))
    reference: str = Field(sa_column=Column(String(140), nullable=False))
    event_id: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class DisputeStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class ReceivableDispute(SQLModel, table=True):
    """A dispute (``dsp_…``) opened by the debtor or the holder; at most one open per receivable."""

    __tablename__ = "receivable_disputes"
    __table_args__ = (
        CheckConstraint(one_of("status", DisputeStatus), name="status_known"),
        CheckConstraint("(status = 'open') = (resolved_at IS NULL)", name="resolved_when_closed"),
        Index(
            "uq_receivable_disputes_open",
            "receivable_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    receivable_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.receivables.id"), nullable=False)
    )
    opened_by: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    reason: str = Field(sa_column=Column(String(1000), nullable=False))
    status: str = Field(
        default=DisputeStatus.open.value, sa_column=Column(String(20), nullable=False)
    )
    resolution: str | None = Field(default=None, sa_column=Column(String(1000)))
    resolved_by: str | None = Field(
        default=None, sa_column=Column(String(40), ForeignKey("platform.organizations.id"))
    )
    opened_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
