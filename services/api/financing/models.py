"""Tables of the marketplace (schema ``platform``).

- ``financing_requests`` (``frq_…``): one auction for one or more receivables of one holder.
- ``financing_request_items``: which receivables a request covers; a receivable is in at most one
  *live* request (partial UNIQUE index) — the database's own guard against offering it twice.
- ``offers`` (``ofr_…``): sealed bids; at most one ``active`` offer per bank and request, and at
  most one ``accepted`` offer per request (partial UNIQUE indexes).
- ``financings`` (``fin_…``): what an accepted offer created; one per request, one per offer.
- ``financing_registry_operations``: the on-chain side of the saga (register / release in
  ``FinancingRegistry``), one row per receivable and action, with its outcome.

Money is integer minor units beside an ISO 4217 code; rates are ``NUMERIC`` (exact decimals).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import IntEnum, StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    func,
    text,
)
from sqlmodel import Field, SQLModel

from qilian.kit.db import one_of


class RequestState(StrEnum):
    open = "open"  # bids accepted until closes_at
    accepted = "accepted"  # one offer won; the financing is being registered / awaits funding
    funded = "funded"  # the bank confirmed the disbursement
    repaid = "repaid"
    defaulted = "defaulted"
    cancelled = "cancelled"  # by the requester while open
    expired = "expired"  # closed without an acceptance
    lapsed = "lapsed"  # the bank did not fund in time: the receivables went back to the market
    rolled_back = "rolled_back"  # the chain refused the registration (financed elsewhere)


LIVE_REQUEST_STATES = frozenset({RequestState.open, RequestState.accepted, RequestState.funded})


class Recourse(StrEnum):
    any = "any"
    recourse = "recourse"
    non_recourse = "non_recourse"


class OfferState(StrEnum):
    active = "active"
    accepted = "accepted"
    withdrawn = "withdrawn"
    expired = "expired"
    lost = "lost"
    replaced = "replaced"  # the bank bid again on the same request (the new offer is active)


class FinancingState(StrEnum):
    registering = "registering"  # accepted; FinancingRegistry registration under way
    awaiting_disbursement = "awaiting_disbursement"  # registered on chain; the bank must fund
    funded = "funded"
    repaid = "repaid"
    defaulted = "defaulted"
    lapsed = "lapsed"  # not funded within the window
    rolled_back = "rolled_back"  # the registry refused (the invoice is financed elsewhere)


class RegistryAction(StrEnum):
    register = "register"
    release = "release"


class ReleaseReason(IntEnum):
    """``FinancingRegistry.release`` reason codes."""

    repaid = 1
    cancelled = 2
    defaulted = 3
    other = 4


class FinancingRequest(SQLModel, table=True):
    __tablename__ = "financing_requests"
    __table_args__ = (
        CheckConstraint(one_of("state", RequestState), name="request_state_known"),
        CheckConstraint(one_of("recourse", Recourse), name="request_recourse_known"),
        CheckConstraint("face_value_minor > 0", name="request_face_value_positive"),
        CheckConstraint(
            "min_advance_rate IS NULL OR (min_advance_rate > 0 AND min_advance_rate <= 1)",
            name="request_min_advance_rate_range",
        ),
        Index("ix_financing_requests_requester", "requester_id", "id"),
        Index(
            "ix_financing_requests_open_closes_at",
            "closes_at",
            postgresql_where=text("state = 'open'"),
        ),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    requester_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    debtor_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    face_value_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    due_date: date = Field(sa_column=Column(Date, nullable=False))
    closes_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    min_advance_rate: Decimal | None = Field(default=None, sa_column=Column(Numeric(10, 8)))
    recourse: str = Field(sa_column=Column(String(20), nullable=False))
    state: str = Field(sa_column=Column(String(20), nullable=False))
    state_reason: str | None = Field(default=None, sa_column=Column(String(200)))
    accepted_offer_id: str | None = Field(default=None, sa_column=Column(String(40)))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    updated_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class FinancingRequestItem(SQLModel, table=True):
    __tablename__ = "financing_request_items"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="request_item_amount_positive"),
        Index(
            "uq_financing_request_items_live_receivable",
            "receivable_id",
            unique=True,
            postgresql_where=text("live"),
        ),
        Index("ix_financing_request_items_receivable", "receivable_id"),
        {"schema": "platform"},
    )

    request_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.financing_requests.id"), primary_key=True)
    )
    receivable_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.receivables.id"), primary_key=True)
    )
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    live: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))


class Offer(SQLModel, table=True):
    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint(one_of("state", OfferState), name="offer_state_known"),
        CheckConstraint("day_count IN ('ACT/360', 'ACT/365')", name="offer_day_count_known"),
        CheckConstraint("advance_rate > 0 AND advance_rate <= 1", name="offer_advance_rate_range"),
        CheckConstraint("annual_rate >= 0 AND annual_rate < 1", name="offer_annual_rate_range"),
        CheckConstraint("fee_minor >= 0", name="offer_fee_not_negative"),
        Index(
            "uq_offers_active_bank_request",
            "request_id",
            "bank_id",
            unique=True,
            postgresql_where=text("state = 'active'"),
        ),
        Index(
            "uq_offers_accepted_request",
            "request_id",
            unique=True,
            postgresql_where=text("state = 'accepted'"),
        ),
        Index("ix_offers_bank", "bank_id", "id"),
        Index("ix_offers_request", "request_id", "id"),
        Index(
            "ix_offers_active_expires_at", "expires_at", postgresql_where=text("state = 'active'")
        ),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    request_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.financing_requests.id"), nullable=False)
    )
    bank_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    advance_rate: Decimal = Field(sa_column=Column(Numeric(10, 8), nullable=False))
    annual_rate: Decimal = Field(sa_column=Column(Numeric(10, 8), nullable=False))
    fee_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    day_count: str = Field(sa_column=Column(String(10), nullable=False))
    recourse: bool = Field(sa_column=Column(Boolean, nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    state: str = Field(sa_column=Column(String(20), nullable=False))
    replaces_id: str | None = Field(default=None, sa_column=Column(String(40)))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class FinancingRecord(SQLModel, table=True):
    """A financing (``fin_…``) created by an accepted offer."""

    __tablename__ = "financings"
    __table_args__ = (
        CheckConstraint(one_of("state", FinancingState), name="financing_state_known"),
        CheckConstraint(
            "advance_minor > 0 AND net_proceeds_minor > 0 AND discount_minor >= 0 "
            "AND fee_minor >= 0 AND repaid_minor >= 0 AND recourse_claim_minor >= 0",
            name="financing_amounts_valid",
        ),
        Index("ix_financings_bank", "bank_id", "id"),
        Index("ix_financings_supplier", "supplier_id", "id"),
        Index("ix_financings_debtor", "debtor_id", "id"),
        Index(
            "ix_financings_awaiting_fund_by",
            "fund_by",
            postgresql_where=text("state = 'awaiting_disbursement'"),
        ),
        Index("ix_financings_funded_due", "due_date", postgresql_where=text("state = 'funded'")),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    request_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("platform.financing_requests.id"), nullable=False, unique=True
        )
    )
    offer_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.offers.id"), nullable=False, unique=True)
    )
    bank_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    supplier_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    debtor_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    face_value_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    advance_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    discount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    fee_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    net_proceeds_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    effective_annual_rate: Decimal = Field(sa_column=Column(Numeric(20, 8), nullable=False))
    advance_rate: Decimal = Field(sa_column=Column(Numeric(10, 8), nullable=False))
    annual_rate: Decimal = Field(sa_column=Column(Numeric(10, 8), nullable=False))
    day_count: str = Field(sa_column=Column(String(10), nullable=False))
    days: int = Field(sa_column=Column(Integer, nullable=False))
    recourse: bool = Field(sa_column=Column(Boolean, nullable=False))
    due_date: date = Field(sa_column=Column(Date, nullable=False))
    state: str = Field(sa_column=Column(String(30), nullable=False))
    state_reason: str | None = Field(default=None, sa_column=Column(String(200)))
    accepted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    registered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    fund_by: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    funded_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    disbursement_reference: str | None = Field(default=None, sa_column=Column(String(200)))
    repaid_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    recourse_claim_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class RegistryOperation(SQLModel, table=True):
    """One register/release of one receivable of a financing in ``FinancingRegistry``."""

    __tablename__ = "financing_registry_operations"
    __table_args__ = (
        CheckConstraint(one_of("action", RegistryAction), name="registry_action_known"),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('done', 'refused')", name="registry_outcome_known"
        ),
        Index("ix_financing_registry_operations_financing", "financing_id"),
        {"schema": "platform"},
    )

    operation_id: str = Field(sa_column=Column(String(40), primary_key=True))
    financing_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.financings.id"), nullable=False)
    )
    receivable_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.receivables.id"), nullable=False)
    )
    action: str = Field(sa_column=Column(String(10), nullable=False))
    reason: int | None = Field(default=None, sa_column=Column(SmallInteger))
    outcome: str | None = Field(default=None, sa_column=Column(String(10)))
    error: str | None = Field(default=None, sa_column=Column(String(100)))
    tx_hash: str | None = Field(default=None, sa_column=Column(String(66)))
    block_number: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    completed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
