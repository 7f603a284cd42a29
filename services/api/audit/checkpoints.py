"""Audit checkpoints: the audit chain's head, handed to the ledger for anchoring.

The hash chain detects a changed row, but not the newest rows deleted together (with the
database's trigger disabled). So periodically the head (``seq``, ``hash``) is written as a
checkpoint and emitted as an event of the ledger stream ``audit-log``: the ledger anchors it like a
receivable's event, and an auditor can prove from the chain that the log had at least that head at
that time. :func:`verify_checkpoints` compares the log with every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, DateTime, String, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from qilian.kit import outbox
from services.api.audit.models import AuditEntry
from services.api.audit.service import APPEND_LOCK, head

STREAM_ID = "audit-log"  # the ledger stream (a receivable_id of its own) of the checkpoints
ACTOR = "platform"


class AuditCheckpoint(SQLModel, table=True):
    """One anchored head of the audit chain (table ``platform.audit_checkpoints``)."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = {"schema": "platform"}

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    audit_seq: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    audit_hash: str = Field(sa_column=Column(String(64), nullable=False))
    event_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def checkpoint(session: AsyncSession) -> AuditCheckpoint | None:
    """Checkpoint the head if it moved since the last checkpoint; None when nothing changed.

    Runs under the audit chain's append lock, so the head cannot move meanwhile and two
    checkpointers never race.
    """
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
    current = await head(session)
    last = (
        await session.execute(
            select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq).desc()).limit(1)
        )
    ).scalar_one_or_none()
    if current is None or (last is not None and last.audit_seq >= current.seq):
        return None
    seq = last.seq + 1 if last else 1
    event_id = await outbox.emit(
        session,
        "receivable.event",
        {
            "receivable_id": STREAM_ID,
            "seq": seq,
            "type": "audit_checkpoint",
            "at": _rfc3339(datetime.now(UTC)),
            "actor": ACTOR,
            "data": {"audit_seq": current.seq, "audit_hash": current.hash},
        },
    )
    row = AuditCheckpoint(
        seq=seq, audit_seq=current.seq, audit_hash=current.hash, event_id=event_id
    )
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True)
class CheckpointProblem:
    checkpoint: int
    audit_seq: int
    reason: str


async def verify_checkpoints(session: AsyncSession) -> list[CheckpointProblem]:
    """Every checkpointed head must still be in the log with the same hash."""
    problems = []
    rows = await session.execute(select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq)))
    for cp in rows.scalars():
        entry = await session.get(AuditEntry, cp.audit_seq)
        if entry is None:
            problems.append(
                CheckpointProblem(cp.seq, cp.audit_seq, "row missing: the log was cut short")
            )
        elif entry.hash != cp.audit_hash:
            problems.append(
                CheckpointProblem(cp.seq, cp.audit_seq, "hash differs from the anchored head")
            )
    return problems
