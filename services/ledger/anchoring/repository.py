"""All SQL of the anchoring pipeline: the inbox scan, records, batch allocation, batch states and
the anchoring account's row lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.ledger.anchoring.models import AnchorAccount, AnchorBatch, BatchStatus, LedgerRecord
from services.ledger.ingest.models import InboxEvent
from services.ledger.registry.models import OperationState, RegistryOperation

# pg_advisory_xact_lock key serialising batch-id allocation ("qilian" + 1)
BATCH_ALLOCATION_LOCK: Final = 0x71696C69616E0001


def utcnow() -> datetime:
    return datetime.now(UTC)


# inbox ------------------------------------------------------------------------------------------

# Unprocessed events that can be decided now: anything that is not a well-formed (receivable_id,
# seq) pair (it will be rejected), a first event, or one whose predecessor is a record already or
# is waiting in the inbox too (processed first in the same pass). Events whose predecessor has not
# arrived are left out, so they never crowd out the others.
_READY_SQL: Final = text(
    """
    SELECT i.event_id FROM ledger.event_inbox i
     WHERE i.processed_at IS NULL AND (
       CASE WHEN jsonb_typeof(i.payload) = 'object'
             AND jsonb_typeof(i.payload -> 'seq') = 'number'
             AND jsonb_typeof(i.payload -> 'receivable_id') = 'string'
             AND (i.payload ->> 'seq') ~ '^[0-9]{1,15}$'
            THEN (i.payload ->> 'seq')::bigint <= 1
              OR EXISTS (SELECT 1 FROM ledger.records r
                          WHERE r.receivable_id = i.payload ->> 'receivable_id'
                            AND r.seq = (i.payload ->> 'seq')::bigint - 1)
              OR EXISTS (SELECT 1 FROM ledger.event_inbox p
                          WHERE p.processed_at IS NULL
                            AND jsonb_typeof(p.payload) = 'object'
                            AND p.payload ->> 'receivable_id' = i.payload ->> 'receivable_id'
                            AND p.payload -> 'seq' = to_jsonb((i.payload ->> 'seq')::bigint - 1))
            ELSE true END)
     ORDER BY i.received_at, i.event_id
     LIMIT :limit
       FOR UPDATE OF i SKIP LOCKED
    """
)


async def ready_inbox_events(session: AsyncSession, limit: int) -> list[InboxEvent]:
    """Unprocessed inbox events that can be decided now, locked (others skip them)."""
    ids = list((await session.execute(_READY_SQL, {"limit": limit})).scalars())
    if not ids:
        return []
    rows = await session.execute(select(InboxEvent).where(col(InboxEvent.event_id).in_(ids)))
    return list(rows.scalars())


async def mark_processed(session: AsyncSession, event_id: str, error: str | None = None) -> None:
    await session.execute(
        update(InboxEvent)
        .where(col(InboxEvent.event_id) == event_id)
        .values(processed_at=utcnow(), error=None if error is None else error[:1000])
    )


async def waiting_events(session: AsyncSession) -> int:
    result = await session.execute(
        select(func.count()).select_from(InboxEvent).where(col(InboxEvent.processed_at).is_(None))
    )
    return int(result.scalar_one())


# records ----------------------------------------------------------------------------------------


async def record_exists(session: AsyncSession, event_id: str) -> bool:
    result = await session.execute(
        select(col(LedgerRecord.event_id)).where(col(LedgerRecord.event_id) == event_id)
    )
    return result.first() is not None


async def record_at(session: AsyncSession, receivable_id: str, seq: int) -> LedgerRecord | None:
    result = await session.execute(
        select(LedgerRecord).where(
            col(LedgerRecord.receivable_id) == receivable_id, col(LedgerRecord.seq) == seq
        )
    )
    return result.scalars().first()


async def insert_record(
    session: AsyncSession,
    *,
    event_id: str,
    receivable_id: str,
    seq: int,
    record: dict[str, Any],
    record_hash: str,
    entry_id: str,
) -> bool:
    """Insert a record; False when its event_id or (receivable_id, seq) is taken already."""
    result = await session.execute(
        insert(LedgerRecord)
        .values(
            event_id=event_id,
            receivable_id=receivable_id,
            seq=seq,
            record=record,
            record_hash=record_hash,
            entry_id=entry_id,
        )
        .on_conflict_do_nothing()
        .returning(col(LedgerRecord.event_id))
    )
    return result.first() is not None


async def recorded_event_ids(session: AsyncSession, event_ids: Sequence[str]) -> set[str]:
    result = await session.execute(
        select(col(LedgerRecord.event_id)).where(col(LedgerRecord.event_id).in_(event_ids))
    )
    return set(result.scalars())


async def record_hashes_at(
    session: AsyncSession, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    """``record_hash`` of the records at these (receivable_id, seq), where they exist."""
    if not keys:
        return {}
    result = await session.execute(
        select(
            col(LedgerRecord.receivable_id), col(LedgerRecord.seq), col(LedgerRecord.record_hash)
        ).where(tuple_(col(LedgerRecord.receivable_id), col(LedgerRecord.seq)).in_(keys))
    )
    return {(rid, seq): record_hash for rid, seq, record_hash in result.all()}


async def insert_records(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert many records, 1 000 a statement (well under the driver's parameter limit); returns
    the event ids inserted (conflicts are skipped)."""
    inserted: set[str] = set()
    for start in range(0, len(rows), 1000):
        result = await session.execute(
            insert(LedgerRecord)
            .values(list(rows[start : start + 1000]))
            .on_conflict_do_nothing()
            .returning(col(LedgerRecord.event_id))
        )
        inserted.update(result.scalars())
    return inserted


async def mark_many_processed(session: AsyncSession, event_ids: Sequence[str]) -> None:
    await session.execute(
        update(InboxEvent)
        .where(col(InboxEvent.event_id).in_(event_ids))
        .values(processed_at=utcnow(), error=None)
    )


# batches ----------------------------------------------------------------------------------------


async def lock_batch_allocation(session: AsyncSession) -> None:
    """Serialise batch closing until the end of the transaction (ids 1, 2, 3 … with no gaps)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:key)"), {"key": BATCH_ALLOCATION_LOCK}
    )


@dataclass(frozen=True)
class Unbatched:
    count: int
    oldest_age: float  # seconds since the oldest unbatched record was created


async def unbatched(session: AsyncSession) -> Unbatched:
    row = (
        await session.execute(
            text(
                "SELECT count(*) AS n, coalesce(extract(epoch FROM clock_timestamp()"
                " - min(created_at)), 0) AS age FROM ledger.records WHERE batch_id IS NULL"
            )
        )
    ).one()
    return Unbatched(int(row.n), float(row.age))


async def take_unbatched(session: AsyncSession, limit: int) -> list[tuple[str, str, str]]:
    """``(event_id, entry_id, record_hash)`` of the oldest unbatched records."""
    rows = await session.execute(
        select(
            col(LedgerRecord.event_id), col(LedgerRecord.entry_id), col(LedgerRecord.record_hash)
        )
        .where(col(LedgerRecord.batch_id).is_(None))
        .order_by(col(LedgerRecord.created_at), col(LedgerRecord.event_id))
        .limit(limit)
    )
    return [(row[0], row[1], row[2]) for row in rows.all()]


async def next_batch_id(session: AsyncSession) -> int:
    result = await session.execute(select(func.coalesce(func.max(AnchorBatch.id), 0)))
    return int(result.scalar_one()) + 1


async def insert_batch(
    session: AsyncSession,
    batch_id: int,
    root: str,
    leaf_count: int,
    dump: dict[str, Any],
    event_ids: Sequence[str],
) -> None:
    await session.execute(
        insert(AnchorBatch).values(id=batch_id, root=root, leaf_count=leaf_count, dump=dump)
    )
    await session.execute(
        update(LedgerRecord)
        .where(col(LedgerRecord.event_id).in_(list(event_ids)))
        .values(batch_id=batch_id)
    )


async def batches_with(
    session: AsyncSession, statuses: Sequence[BatchStatus], *, lock: bool = True
) -> list[AnchorBatch]:
    stmt = (
        select(AnchorBatch)
        .where(col(AnchorBatch.status).in_([s.value for s in statuses]))
        .order_by(col(AnchorBatch.id))
    )
    if lock:
        stmt = stmt.with_for_update()
    return list((await session.execute(stmt)).scalars())


async def lowest_pending(session: AsyncSession) -> AnchorBatch | None:
    stmt = (
        select(AnchorBatch)
        .where(col(AnchorBatch.status) == BatchStatus.PENDING.value)
        .order_by(col(AnchorBatch.id))
        .limit(1)
        .with_for_update()
    )
    return (await session.execute(stmt)).scalars().first()


async def in_flight(session: AsyncSession, sender: str) -> bool:
    """Whether a transaction of the account waits for its receipt: an anchoring batch's or a
    FinancingRegistry operation's (they share the account, its nonces, one in flight)."""
    batch = select(col(AnchorBatch.id)).where(
        col(AnchorBatch.status) == BatchStatus.SENT.value,
        func.lower(col(AnchorBatch.sender)) == sender.lower(),
    )
    if (await session.execute(batch)).first() is not None:
        return True
    operation = select(col(RegistryOperation.operation_id)).where(
        col(RegistryOperation.state) == OperationState.SENT.value,
        col(RegistryOperation.sender) == sender.lower(),
    )
    return (await session.execute(operation)).first() is not None


def to_pending(batch: AnchorBatch, reason: str) -> None:
    """Forget where a batch was on chain: it will be sent again."""
    batch.status = BatchStatus.PENDING.value
    batch.tx_hash = batch.nonce = batch.block_number = batch.block_hash = None
    batch.gas_used = None
    batch.sent_at = batch.anchored_at = batch.final_at = None
    batch.last_error = reason[:1000]


async def reset_from(session: AsyncSession, first_id: int, reason: str) -> list[int]:
    """Send every batch from ``first_id`` on again (the chain does not hold them)."""
    stmt = (
        select(AnchorBatch)
        .where(
            col(AnchorBatch.id) >= first_id,
            col(AnchorBatch.status) != BatchStatus.PENDING.value,
        )
        .order_by(col(AnchorBatch.id))
        .with_for_update()
    )
    batches = list((await session.execute(stmt)).scalars())
    for batch in batches:
        to_pending(batch, reason)
    await session.flush()
    return [batch.id for batch in batches]


async def get_batch(session: AsyncSession, batch_id: int) -> AnchorBatch | None:
    return await session.get(AnchorBatch, batch_id)


async def batch_records(session: AsyncSession, batch_id: int) -> list[LedgerRecord]:
    rows = await session.execute(select(LedgerRecord).where(col(LedgerRecord.batch_id) == batch_id))
    return list(rows.scalars())


# accounts ---------------------------------------------------------------------------------------


async def lock_account(session: AsyncSession, address: str) -> tuple[AnchorAccount, bool]:
    """The account's row, locked ``FOR UPDATE`` until the end of the transaction; ``True`` when it
    was created just now (its nonce is then unknown and taken from the chain)."""
    created = await session.execute(
        insert(AnchorAccount)
        .values(address=address, next_nonce=0)
        .on_conflict_do_nothing()
        .returning(col(AnchorAccount.address))
    )
    is_new = created.first() is not None
    stmt = select(AnchorAccount).where(col(AnchorAccount.address) == address).with_for_update()
    account = (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one()
    return account, is_new


# metrics ----------------------------------------------------------------------------------------


async def status_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(col(AnchorBatch.status), func.count()).group_by(col(AnchorBatch.status))
    )
    return {status: int(n) for status, n in rows.all()}


async def anchoring_lag(session: AsyncSession) -> float:
    """Age in seconds of the oldest record that is not yet in an anchored (or final) batch."""
    row = (
        await session.execute(
            text(
                "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(r.created_at)), 0)"
                " FROM ledger.records r LEFT JOIN ledger.batches b ON b.id = r.batch_id"
                " WHERE r.batch_id IS NULL OR b.status IN ('pending', 'sent')"
            )
        )
    ).scalar_one()
    return float(row)
