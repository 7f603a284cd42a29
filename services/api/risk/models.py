"""Tables of risk sharing (政银担) and of the regulator's early warnings (schema ``platform``).

- ``guarantee_programmes`` (``gpr_…``): a guarantor's programme: eligibility, fee rate, and the
  loss shares among guarantor, bank, the risk compensation pool and others (summing to 1).
- ``guarantee_requests``: a financing request asking for a programme's cover.
- ``guarantee_covers``: the cover attached to a financing at acceptance, shares frozen then.
- ``risk_claims`` (``clm_…``): one row per party of a defaulted covered financing: its part of
  the loss; the pool's part is paid from the pool's balance, or queued (``seq`` is the order).
- ``risk_accounts``, ``risk_ledger_entries`` (``jnl_…``), ``risk_ledger_lines``: the double-entry
  ledger of the pool, fees, claims and recoveries. The database enforces what protects money
  (migration 0010): every entry balances (a deferred constraint trigger), an account's balance
  stays within its limits (CHECK on the balance a trigger maintains), entries and lines are never
  changed (UPDATE/DELETE/TRUNCATE refused). Entries are hash-chained for the verifier.
- ``risk_alerts`` (``alr_…``): early warnings, unique per (rule, subject, period).

Money is integer minor units beside an ISO 4217 code; rates and shares are ``NUMERIC``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from qilian.kit.db import one_of


class Party(StrEnum):
    """Who bears a share of a covered financing's loss."""

    guarantor = "guarantor"  # the programme's guarantor (融资担保机构)
    bank = "bank"  # the financing bank keeps this share itself
    pool = "pool"  # the government risk compensation pool (风险补偿资金池)
    other = "other"  # another organisation named in the programme (e.g. a re-guarantor)


class ClaimState(StrEnum):
    borne = "borne"  # the bank's own share: nobody pays it
    raised = "raised"  # a guarantor's or other party's share, owed to the bank
    queued = "queued"  # the pool's share, waiting for the pool's balance
    paid = "paid"  # paid: by the pool from its balance, or recorded by its guarantor (an entry)


class EntryKind(StrEnum):
    top_up = "top_up"
    guarantee_fee = "guarantee_fee"
    fee_reversal = "fee_reversal"
    claim_raised = "claim_raised"
    claim_paid = "claim_paid"  # the pool pays its claim
    recovery = "recovery"
    guarantor_payment = "guarantor_payment"  # a guarantor records paying its claim to the bank


class GuaranteeProgramme(SQLModel, table=True):
    """A guarantor's programme (``gpr_…``)."""

    __tablename__ = "guarantee_programmes"
    __table_args__ = (
        CheckConstraint("fee_rate >= 0 AND fee_rate < 1", name="programme_fee_rate_range"),
        CheckConstraint(
            "max_amount_minor IS NULL OR max_amount_minor > 0", name="programme_max_amount_positive"
        ),
        Index("ix_guarantee_programmes_guarantor", "guarantor_id", "id"),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    guarantor_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    name: str = Field(sa_column=Column(String(200), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    max_amount_minor: int | None = Field(default=None, sa_column=Column(BigInteger))
    clusters: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(String(20)), nullable=False)
    )  # the debtor's cluster must be one of them; empty = every cluster
    green_only: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    fee_rate: Decimal = Field(sa_column=Column(Numeric(10, 8), nullable=False))
    loss_shares: list[dict[str, Any]] = Field(
        sa_column=Column(JSONB, nullable=False)
    )  # [{"party", "organization_id", "share": "0.4"}], validated to sum to exactly 1
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class GuaranteeRequest(SQLModel, table=True):
    """A financing request that asks for a programme's cover."""

    __tablename__ = "guarantee_requests"
    __table_args__ = ({"schema": "platform"},)

    request_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.financing_requests.id"), primary_key=True)
    )
    programme_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("platform.guarantee_programmes.id"), nullable=False, index=True
        )
    )


class GuaranteeCover(SQLModel, table=True):
    """The cover of one financing, frozen at acceptance."""

    __tablename__ = "guarantee_covers"
    __table_args__ = (
        CheckConstraint("covered_minor > 0 AND fee_minor >= 0", name="cover_amounts_valid"),
        Index("ix_guarantee_covers_programme", "programme_id"),
        Index("ix_guarantee_covers_guarantor", "guarantor_id", "financing_id"),
        {"schema": "platform"},
    )

    financing_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.financings.id"), primary_key=True)
    )
    programme_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.guarantee_programmes.id"), nullable=False)
    )
    guarantor_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    covered_minor: int = Field(sa_column=Column(BigInteger, nullable=False))  # the advance
    fee_rate: Decimal = Field(sa_column=Column(Numeric(10, 8), nullable=False))
    fee_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    loss_shares: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    fee_entry_id: str | None = Field(default=None, sa_column=Column(String(40)))
    fee_reversed: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    attached_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class RiskClaim(SQLModel, table=True):
    """One party's part of a covered financing's loss (``clm_…``)."""

    __tablename__ = "risk_claims"
    __table_args__ = (
        CheckConstraint(one_of("party", Party), name="claim_party_known"),
        CheckConstraint(one_of("state", ClaimState), name="claim_state_known"),
        CheckConstraint(
            "amount_minor >= 0 AND loss_minor > 0 AND recovered_minor >= 0 "
            "AND recovered_minor <= amount_minor",
            name="claim_amounts_valid",
        ),
        CheckConstraint("share > 0 AND share <= 1", name="claim_share_range"),
        UniqueConstraint("financing_id", "line", name="uq_risk_claims_financing_line"),
        Index(
            "ix_risk_claims_queued", "currency", "seq", postgresql_where=text("state = 'queued'")
        ),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    seq: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), nullable=False)
    )  # the order in which queued claims are paid
    financing_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("platform.guarantee_covers.financing_id"), nullable=False
        )
    )
    line: int = Field(sa_column=Column(Integer, nullable=False))  # position in loss_shares
    party: str = Field(sa_column=Column(String(20), nullable=False))
    organization_id: str | None = Field(
        default=None, sa_column=Column(String(40), ForeignKey("platform.organizations.id"))
    )  # None for the pool
    bank_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )  # who is owed the claim
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    share: Decimal = Field(sa_column=Column(Numeric(12, 10), nullable=False))
    loss_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    recovered_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )  # the pool's part of recoveries returned on this claim
    state: str = Field(sa_column=Column(String(10), nullable=False))
    raised_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    paid_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    payment_entry_id: str | None = Field(default=None, sa_column=Column(String(40)))
    payment_reference: str | None = Field(
        default=None, sa_column=Column(String(200))
    )  # the guarantor's reference of its payment (bank transfer) to the bank


class RiskAccount(SQLModel, table=True):
    """A ledger account; ``balance_minor`` is debits − credits, kept by a trigger on the lines and
    held within ``[min_balance_minor, max_balance_minor]`` by a CHECK."""

    __tablename__ = "risk_accounts"
    __table_args__ = (
        CheckConstraint(
            "(min_balance_minor IS NULL OR balance_minor >= min_balance_minor) AND "
            "(max_balance_minor IS NULL OR balance_minor <= max_balance_minor)",
            name="account_within_limits",
        ),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(120), primary_key=True))  # e.g. "pool:CNY"
    kind: str = Field(sa_column=Column(String(40), nullable=False))
    organization_id: str | None = Field(
        default=None, sa_column=Column(String(40), ForeignKey("platform.organizations.id"))
    )
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    balance_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    min_balance_minor: int | None = Field(default=None, sa_column=Column(BigInteger))
    max_balance_minor: int | None = Field(default=None, sa_column=Column(BigInteger))


class LedgerEntry(SQLModel, table=True):
    """One balanced journal entry (``jnl_…``), hash-chained by ``seq``."""

    __tablename__ = "risk_ledger_entries"
    __table_args__ = (
        CheckConstraint(one_of("kind", EntryKind), name="entry_kind_known"),
        UniqueConstraint("seq", name="uq_risk_ledger_entries_seq"),
        Index("ix_risk_ledger_entries_financing", "financing_id"),
        # a claim is paid once, by the pool or by its guarantor: the database holds it too
        Index(
            "uq_risk_ledger_entries_claim_payment",
            "claim_id",
            unique=True,
            postgresql_where=text("kind IN ('claim_paid', 'guarantor_payment')"),
        ),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(sa_column=Column(String(20), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    financing_id: str | None = Field(default=None, sa_column=Column(String(40)))
    claim_id: str | None = Field(default=None, sa_column=Column(String(40)))
    actor: str = Field(sa_column=Column(String(128), nullable=False))
    memo: str | None = Field(default=None, sa_column=Column(String(500)))
    posted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))


class LedgerLine(SQLModel, table=True):
    """One debit or credit of an entry."""

    __tablename__ = "risk_ledger_lines"
    __table_args__ = (
        CheckConstraint(
            "(debit_minor > 0 AND credit_minor = 0) OR (credit_minor > 0 AND debit_minor = 0)",
            name="line_one_side_positive",
        ),
        Index("ix_risk_ledger_lines_account", "account_id"),
        {"schema": "platform"},
    )

    entry_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("platform.risk_ledger_entries.id"), primary_key=True
        )
    )
    line: int = Field(sa_column=Column(Integer, primary_key=True))
    account_id: str = Field(
        sa_column=Column(String(120), ForeignKey("platform.risk_accounts.id"), nullable=False)
    )
    debit_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    credit_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )


class Alert(SQLModel, table=True):
    """An early warning (``alr_…``), raised once per (rule, subject, period)."""

    __tablename__ = "risk_alerts"
    __table_args__ = (
        UniqueConstraint("rule", "subject", "period", name="uq_risk_alerts_rule_subject_period"),
        Index("ix_risk_alerts_raised_at", "raised_at", "id"),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    rule: str = Field(sa_column=Column(String(40), nullable=False))
    subject: str = Field(sa_column=Column(String(120), nullable=False))  # "cluster:pv", "org:…"
    period: str = Field(sa_column=Column(String(10), nullable=False))  # "2026-11"
    severity: str = Field(sa_column=Column(String(10), nullable=False))
    summary: str = Field(sa_column=Column(String(500), nullable=False))
    facts: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    raised_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
