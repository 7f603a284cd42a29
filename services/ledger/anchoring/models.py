"""Tables of the anchoring pipeline: records, batches and the anchoring accounts' nonces.

- ``ledger.records``: one canonical record (``qilian.receivable-event/1``) per accepted inbox event,
  chained per receivable by ``prev``; ``batch_id`` is set when a batch takes it.
- ``ledger.batches``: batches 1, 2, 3 … with no gaps, their ``standard-v1`` tree dump and where they
  are on chain (``pending`` → ``sent`` → ``anchored`` → ``final``; back to ``pending`` when the
  chain lost them).
- ``ledger.accounts``: the next nonce of each anchoring account; its row is the lock that keeps one
  anchoring transaction in flight per account.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
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


class BatchStatus(StrEnum):
    """Where a batch is: built, transaction broadcast, mined, deep enough to be final."""

    PENDING = "pending"
    SENT = "sent"
    ANCHORED = "anchored"
    FINAL = "final"


class AnchorBatch(SQLModel, table=True):
    """One Merkle batch (table ``ledger.batches``) and its anchoring transaction."""

    __tablename__ = "batches"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'anchored', 'final')", name="status"),
        CheckConstraint("id >= 1 AND leaf_count >= 1", name="positive"),
        Index("ix_batches_open", "id", postgresql_where=text("status <> 'final'")),
        {"schema": "ledger"},
    )

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: str = Field(sa_column=Column(String(66), nullable=False))
    leaf_count: int = Field(sa_column=Column(Integer, nullable=False))
    dump: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    status: str = Field(
        default=BatchStatus.PENDING.value,
        sa_column=Column(String(16), nullable=False, server_default=BatchStatus.PENDING.value),
    )
    contract: str | None = Field(default=None, sa_column=Column(String(42)))
    sender: str | None = Field(default=None, sa_column=Column(String(42)))
    tx_hash: str | None = Field(default=None, sa_column=Column(String(66)))
    nonce: int | None = Field(default=None, sa_column=Column(BigInteger))
    block_number: int | None = Field(default=None, sa_column=Column(BigInteger))
    block_hash: str | None = Field(default=None, sa_column=Column(String(66)))
    gas_used: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    anchored_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    final_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    last_error: str | None = Field(default=None, sa_column=Column(String(1000)))


class LedgerRecord(SQLModel, table=True):
    """The canonical record of one receivable event (table ``ledger.records``)."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("receivable_id", "seq", name="uq_records_receivable_id_seq"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        Index("ix_records_unbatched", "created_at", postgresql_where=text("batch_id IS NULL")),
        Index("ix_records_batch_id", "batch_id"),
        {"schema": "ledger"},
    )

    event_id: str = Field(sa_column=Column(String(64), primary_key=True))
    receivable_id: str = Field(sa_column=Column(String(128), nullable=False))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    record: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    record_hash: str = Field(sa_column=Column(String(66), nullable=False))
    entry_id: str = Field(sa_column=Column(String(66), nullable=False))
    batch_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, ForeignKey("ledger.batches.id"))
    )
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


class AnchorAccount(SQLModel, table=True):
    """An anchoring account's next nonce (table ``ledger.accounts``); its row is the send lock."""

    __tablename__ = "accounts"
    __table_args__ = {"schema": "ledger"}

    address: str = Field(sa_column=Column(String(42), primary_key=True))
    next_nonce: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
