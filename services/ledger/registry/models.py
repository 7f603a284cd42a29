"""The table of FinancingRegistry operations (``ledger.registry_operations``).

One row per operation the API asked for (``financing.registry`` outbox events), keyed by its
``operation_id`` (the idempotency key). ``seq`` is the order they are sent in. States:
``pending`` → ``sent`` (signed with the anchoring account's next nonce, broadcast) → ``done`` (mined
with status 1, or already so on chain) | ``refused`` (the contract reverts with ``error``); back to
``pending`` when the chain dropped the transaction. Only hashes are stored for the chain side: the
on-chain ``fingerprint`` (whole or part), the invoice's on-chain fingerprint for a part, and the
``financing_ref``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    func,
    text,
)
from sqlmodel import Field, SQLModel


class OperationState(StrEnum):
    """Where an operation is: waiting, broadcast, mined (or already true on chain), refused."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"
    REFUSED = "refused"


class OperationAction(StrEnum):
    REGISTER = "register"
    RELEASE = "release"


class RegistryOperation(SQLModel, table=True):
    """One register or release of a financing in the FinancingRegistry contract."""

    __tablename__ = "registry_operations"
    __table_args__ = (
        CheckConstraint("action IN ('register', 'release')", name="action"),
        CheckConstraint("state IN ('pending', 'sent', 'done', 'refused')", name="state"),
        CheckConstraint(
            "(action = 'register' AND reason IS NULL)"
            " OR (action = 'release' AND reason BETWEEN 1 AND 4)",
            name="reason",
        ),
        CheckConstraint("part = (invoice_fingerprint IS NOT NULL)", name="part_invoice"),
        Index("ix_registry_operations_financing_id", "financing_id"),
        Index(
            "ix_registry_operations_open",
            "seq",
            postgresql_where=text("state IN ('pending', 'sent')"),
        ),
        {"schema": "ledger"},
    )

    operation_id: str = Field(sa_column=Column(String(64), primary_key=True))
    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), nullable=False, unique=True),
    )
    action: str = Field(sa_column=Column(String(16), nullable=False))
    financing_id: str = Field(sa_column=Column(String(64), nullable=False))
    receivable_id: str = Field(sa_column=Column(String(64), nullable=False))
    part: bool = Field(sa_column=Column(Boolean, nullable=False))
    fingerprint: str = Field(sa_column=Column(String(66), nullable=False))
    invoice_fingerprint: str | None = Field(default=None, sa_column=Column(String(66)))
    financing_ref: str = Field(sa_column=Column(String(66), nullable=False))
    reason: int | None = Field(default=None, sa_column=Column(SmallInteger))
    state: str = Field(
        default=OperationState.PENDING.value,
        sa_column=Column(String(16), nullable=False, server_default=OperationState.PENDING.value),
    )
    attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    contract: str | None = Field(default=None, sa_column=Column(String(42)))
    sender: str | None = Field(default=None, sa_column=Column(String(42)))
    nonce: int | None = Field(default=None, sa_column=Column(BigInteger))
    tx_hash: str | None = Field(default=None, sa_column=Column(String(66)))
    block_number: int | None = Field(default=None, sa_column=Column(BigInteger))
    error: str | None = Field(default=None, sa_column=Column(String(100)))
    last_error: str | None = Field(default=None, sa_column=Column(String(1000)))
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    completed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
