"""Appending to and verifying the hash-chained audit log.

Appends are serialised by a transaction-scoped advisory lock: the appender reads the head, computes
the next row's hash and inserts it, and the lock is released when its transaction commits or rolls
back, so the chain has no fork and no gap (``seq`` is contiguous).

:func:`append` only records the entry in the session; the chained row is written **as the
transaction commits** (a ``before_commit`` listener), so the lock is held for the commit alone and
not for the rest of the business work — every writer of the API takes it, and holding it for a
whole request serialised them all. Reading the head in the same transaction (:func:`head`) first
writes what is pending, so a transaction always sees its own entries. A rolled-back transaction
appends nothing, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
import structlog
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col

from services.api.audit.models import GENESIS_HASH, AuditEntry, Outcome
from services.api.auth.models import Principal

APPEND_LOCK = 0x5149_4C49_414E_0A01  # pg_advisory_xact_lock key of the audit chain


@dataclass(frozen=True)
class Actor:
    """Who acted: a client, a user, the operator's CLI (``system``) or nobody known."""

    type: str
    id: str | None = None
    organization_id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.kind.value, principal.subject, principal.organization_id)


SYSTEM = Actor("system", "qilian-cli")
ANONYMOUS = Actor("anonymous")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(entry: AuditEntry) -> bytes:
    """RFC 8785 JSON of every column but ``hash``."""
    document: dict[str, Any] = {
        "seq": entry.seq,
        "occurred_at": _iso(entry.occurred_at),
        "actor_type": entry.actor_type,
        "actor_id": entry.actor_id,
        "organization_id": entry.organization_id,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "outcome": entry.outcome,
        "request_id": entry.request_id,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    encoded: bytes = rfc8785.dumps(document)
    return encoded


def chain_hash(prev_hash: str, entry: AuditEntry) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(entry)).hexdigest()


PENDING = "qilian.audit.pending"


def _head(session: Session) -> AuditEntry | None:
    result = session.execute(select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(1))
    return result.scalar_one_or_none()


def write_pending(session: Session) -> None:
    """Chain and insert the session's pending entries, under the append lock (synchronous: run
    from the commit, or through ``run_sync``)."""
    pending: list[AuditEntry] = session.info.pop(PENDING, None) or []
    if not pending:
        return
    # the transaction's own changes first: every row lock it needs is taken before the append
    # lock, so the append lock is always the last one taken (no lock cycle through it)
    session.flush()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
    last = _head(session)
    for entry in pending:
        entry.seq = (last.seq + 1) if last else 1
        entry.prev_hash = last.hash if last else GENESIS_HASH
        entry.hash = chain_hash(entry.prev_hash, entry)
        session.add(entry)
        last = entry
    session.flush()


@event.listens_for(Session, "before_commit")
def _append_at_commit(session: Session) -> None:
    write_pending(session)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)


async def head(session: AsyncSession) -> AuditEntry | None:
    """The chain's last row, as this transaction sees it (its own pending entries included)."""
    await session.run_sync(write_pending)
    result = await session.execute(select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(1))
    return result.scalar_one_or_none()


async def append(
    session: AsyncSession,
    actor: Actor | Principal,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    outcome: Outcome = Outcome.success,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one row at the head of the chain, inside the caller's transaction: the row is
    written when the transaction commits (its ``seq`` and ``hash`` are set then)."""
    if isinstance(actor, Principal):
        actor = Actor.of(actor)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    entry = AuditEntry(
        seq=0,
        occurred_at=datetime.now(UTC),
        actor_type=actor.type,
        actor_id=actor.id,
        organization_id=actor.organization_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        outcome=outcome.value,
        request_id=str(request_id) if request_id else None,
        details=details or {},
        prev_hash="",
        hash="",
    )
    session.sync_session.info.setdefault(PENDING, []).append(entry)
    return entry


@dataclass(frozen=True)
class Verification:
    """The result of recomputing the chain: ``first_bad_seq`` names the first row that fails."""

    ok: bool
    rows: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None


async def _rows(session: AsyncSession, batch: int) -> AsyncIterator[AuditEntry]:
    after = 0
    while True:
        result = await session.execute(
            select(AuditEntry)
            .where(col(AuditEntry.seq) > after)
            .order_by(col(AuditEntry.seq))
            .limit(batch)
        )
        rows = list(result.scalars())
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].seq
        session.expunge_all()


async def verify(session: AsyncSession, batch: int = 1000) -> Verification:
    """Recompute every hash from the stored rows; stop at the first row that does not match."""
    expected_prev, expected_seq, count = GENESIS_HASH, 1, 0
    async for row in _rows(session, batch):
        if row.seq != expected_seq:
            return Verification(
                False, count, expected_prev, expected_seq, f"row {expected_seq} is missing"
            )
        if row.prev_hash != expected_prev:
            return Verification(
                False, count, expected_prev, row.seq, "prev_hash does not match the previous row"
            )
        if chain_hash(row.prev_hash, row) != row.hash:
            return Verification(
                False, count, expected_prev, row.seq, "hash does not match the row's contents"
            )
        expected_prev, expected_seq, count = row.hash, row.seq + 1, count + 1
    return Verification(True, count, expected_prev)
