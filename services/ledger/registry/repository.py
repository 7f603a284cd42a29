"""All SQL of the FinancingRegistry operations (``ledger.registry_operations``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.ledger.registry.models import OperationState, RegistryOperation

OPEN = (OperationState.PENDING.value, OperationState.SENT.value)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def insert_operation(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert an operation; False when its ``operation_id`` is known already (a redelivery)."""
    result = await session.execute(
        insert(RegistryOperation)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["operation_id"])
        .returning(col(RegistryOperation.operation_id))
    )
    return result.first() is not None


async def get(session: AsyncSession, operation_id: str) -> RegistryOperation | None:
    return await session.get(RegistryOperation, operation_id)


async def for_financing(session: AsyncSession, financing_id: str) -> list[RegistryOperation]:
    rows = await session.execute(
        select(RegistryOperation)
        .where(col(RegistryOperation.financing_id) == financing_id)
        .order_by(col(RegistryOperation.seq))
    )
    return list(rows.scalars())


async def has_open(session: AsyncSession) -> bool:
    result = await session.execute(
        select(col(RegistryOperation.operation_id))
        .where(col(RegistryOperation.state).in_(OPEN))
        .limit(1)
    )
    return result.first() is not None


async def with_state(
    session: AsyncSession, states: Sequence[OperationState]
) -> list[RegistryOperation]:
    """Operations in these states, in order, locked until the end of the transaction."""
    rows = await session.execute(
        select(RegistryOperation)
        .where(col(RegistryOperation.state).in_([s.value for s in states]))
        .order_by(col(RegistryOperation.seq))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows.scalars())


async def lowest_pending(session: AsyncSession) -> RegistryOperation | None:
    rows = await session.execute(
        select(RegistryOperation)
        .where(col(RegistryOperation.state) == OperationState.PENDING.value)
        .order_by(col(RegistryOperation.seq))
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return rows.scalars().first()


async def has_done(session: AsyncSession) -> bool:
    result = await session.execute(
        select(col(RegistryOperation.operation_id))
        .where(col(RegistryOperation.state) == OperationState.DONE.value)
        .limit(1)
    )
    return result.first() is not None


async def last_done_per_fingerprint(
    session: AsyncSession, *, fingerprints: Collection[str] | None = None, lock: bool = True
) -> list[RegistryOperation]:
    """Per fingerprint without an open operation, its last ``done`` operation (register or
    release): what the chain must show for it now. Locked unless ``lock`` is false; only the
    given ``fingerprints`` when they are named."""
    open_fingerprints = select(col(RegistryOperation.fingerprint)).where(
        col(RegistryOperation.state).in_(OPEN)
    )
    last = select(func.max(col(RegistryOperation.seq))).where(
        col(RegistryOperation.state) == OperationState.DONE.value,
        col(RegistryOperation.fingerprint).not_in(open_fingerprints),
    )
    if fingerprints is not None:
        last = last.where(col(RegistryOperation.fingerprint).in_(list(fingerprints)))
    query = (
        select(RegistryOperation)
        .where(col(RegistryOperation.seq).in_(last.group_by(col(RegistryOperation.fingerprint))))
        .order_by(col(RegistryOperation.seq))
        .execution_options(populate_existing=True)
    )
    rows = await session.execute(query.with_for_update() if lock else query)
    return list(rows.scalars())


def to_pending(operation: RegistryOperation, reason: str) -> None:
    """Forget the operation's transaction: it will be simulated and sent again."""
    operation.state = OperationState.PENDING.value
    operation.tx_hash = operation.nonce = operation.block_number = None
    operation.sent_at = None
    operation.last_error = reason[:1000]
    operation.updated_at = utcnow()


# metrics ----------------------------------------------------------------------------------------


async def state_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(col(RegistryOperation.state), func.count()).group_by(col(RegistryOperation.state))
    )
    return {state: int(n) for state, n in rows.all()}


async def oldest_open_age(session: AsyncSession) -> float:
    """Age in seconds of the oldest operation not yet done or refused (0 when none)."""
    row = await session.execute(
        text(
            "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)"
            " FROM ledger.registry_operations WHERE state IN ('pending', 'sent')"
        )
    )
    return float(row.scalar_one())
