"""The transactional outbox: a business change and its event commit in one transaction.

Producers call :func:`emit` inside their transaction. The relay (a worker task) claims undelivered
rows with ``FOR UPDATE SKIP LOCKED``, publishes them to the broker and leases them for
``redelivery`` seconds. A consumer built with :func:`consumer` applies its effect and acknowledges
the row **in the same database transaction**, so the effect happens exactly once even though the
broker may deliver twice. A row not acknowledged before its lease ends is published again; after
``max_attempts`` it moves to the dead-letter state (``dead_at``) and shows in metrics.
The row, not the broker, is the source of truth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from qilian.kit import ids

log = structlog.get_logger(__name__)

# Which Celery task consumes each topic; the relay sends by name, so no service imports another.
CONSUMERS: dict[str, str] = {
    "receivable.event": "ledger.ingest_receivable_event",
    # the acceptance saga: the api asks the ledger to register/release a financing on chain …
    "financing.registry": "ledger.registry.accept_operation",
    # … and the ledger answers with the outcome once the transaction is mined (or refused)
    "financing.registry_result": "financing.apply_registry_result",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxEvent(SQLModel, table=True):
    """One event waiting to reach its consumer (table ``platform.outbox``)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL AND dead_at IS NULL"),
        ),
        {"schema": "platform"},
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    event_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    topic: str = Field(sa_column=Column(String(100), nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    published_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    dead_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_error: str | None = Field(default=None, sa_column=Column(String(1000)))


@dataclasses.dataclass(frozen=True)
class Envelope:
    """What travels through the broker: ids and the payload, JSON only."""

    event_id: str
    topic: str
    payload: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Envelope:
        return cls(event_id=data["event_id"], topic=data["topic"], payload=data["payload"])


async def emit(
    session: AsyncSession, topic: str, payload: dict[str, Any], event_id: str | None = None
) -> str:
    """Add an event to the caller's transaction; returns its id. Unknown topics are refused."""
    if topic not in CONSUMERS:
        raise ValueError(f"no consumer for topic {topic!r}")
    event_id = event_id or ids.new_id("evt")
    await session.execute(
        insert(OutboxEvent).values(event_id=event_id, topic=topic, payload=payload)
    )
    return event_id


async def claim(
    session: AsyncSession, *, limit: int, lease: timedelta, max_attempts: int
) -> list[Envelope]:
    """Claim due rows (skipping rows other relays hold) and lease them; the caller commits."""
    now = utcnow()
    await session.execute(
        text(
            "UPDATE platform.outbox SET dead_at = :now, last_error = coalesce(last_error, "
            "'no acknowledgement after max attempts') "
            "WHERE delivered_at IS NULL AND dead_at IS NULL AND attempts >= :max "
            "AND next_attempt_at <= :now"
        ),
        {"now": now, "max": max_attempts},
    )
    rows = await session.execute(
        text(
            """
            UPDATE platform.outbox o
               SET attempts = o.attempts + 1,
                   next_attempt_at = :now
                       + (:lease * power(2, least(o.attempts, 6))) * interval '1 second',
                   published_at = :now
             WHERE o.id IN (
                   SELECT id FROM platform.outbox
                    WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= :now
                    ORDER BY id
                    LIMIT :limit
                    FOR UPDATE SKIP LOCKED)
            RETURNING o.id, o.event_id, o.topic, o.payload
            """
        ),
        {"now": now, "lease": lease.total_seconds(), "limit": limit},
    )
    claimed = sorted(rows.all(), key=lambda row: row.id)
    return [Envelope(row.event_id, row.topic, row.payload) for row in claimed]


async def acknowledge(session: AsyncSession, event_id: str) -> bool:
    """Mark delivered in the consumer's transaction; False when it was delivered already."""
    result = await session.execute(
        text(
            "UPDATE platform.outbox SET delivered_at = now() "
            "WHERE event_id = :event_id AND delivered_at IS NULL RETURNING id"
        ),
        {"event_id": event_id},
    )
    return result.first() is not None


async def record_failure(session: AsyncSession, event_id: str, error: str) -> None:
    await session.execute(
        text("UPDATE platform.outbox SET last_error = :error WHERE event_id = :event_id"),
        {"event_id": event_id, "error": error[:1000]},
    )


@dataclasses.dataclass(frozen=True)
class OutboxStats:
    pending: int
    dead: int
    oldest_pending_age: float


async def stats(session: AsyncSession) -> OutboxStats:
    # pending rows are read through the partial index ix_outbox_due; delivered rows are pruned
    row = (
        await session.execute(
            text(
                """
                SELECT (SELECT count(*) FROM platform.outbox
                         WHERE delivered_at IS NULL AND dead_at IS NULL) AS pending,
                       (SELECT count(*) FROM platform.outbox
                         WHERE dead_at IS NOT NULL AND delivered_at IS NULL) AS dead,
                       (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
                          FROM platform.outbox
                         WHERE delivered_at IS NULL AND dead_at IS NULL) AS age
                """
            )
        )
    ).one()
    return OutboxStats(int(row.pending), int(row.dead), float(row.age))


Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]


async def consume(session: AsyncSession, envelope: Envelope, handler: Handler) -> bool:
    """Apply ``handler`` once: skip it when the row was acknowledged already.

    The row is locked first (``FOR UPDATE``) so two deliveries of one event running at the same time
    serialise: the second sees the first's acknowledgement and does nothing.
    """
    locked = await session.execute(
        text("SELECT delivered_at FROM platform.outbox WHERE event_id = :event_id FOR UPDATE"),
        {"event_id": envelope.event_id},
    )
    row = locked.first()
    if row is None:
        log.warning("outbox_event_unknown", event_id=envelope.event_id)
        return False
    if row.delivered_at is not None:
        return False
    await handler(session, envelope)
    await acknowledge(session, envelope.event_id)
    return True


async def consume_all(
    session: AsyncSession, envelopes: Sequence[Envelope], handler: Handler
) -> int:
    """Apply ``handler`` to every not-yet-delivered event of the batch in the caller's one
    transaction, and acknowledge them together. Rows are locked in id order (no deadlock between
    two deliveries of overlapping batches); events delivered already are skipped."""
    wanted = {envelope.event_id: envelope for envelope in envelopes}
    locked = await session.execute(
        text(
            "SELECT event_id FROM platform.outbox WHERE event_id = ANY(:ids) "
            "AND delivered_at IS NULL ORDER BY id FOR UPDATE"
        ),
        {"ids": list(wanted)},
    )
    due = [str(row.event_id) for row in locked]
    for event_id in due:
        await handler(session, wanted[event_id])
    if due:
        await session.execute(
            text("UPDATE platform.outbox SET delivered_at = now() WHERE event_id = ANY(:ids)"),
            {"ids": due},
        )
    return len(due)


async def prune(session: AsyncSession, older_than: timedelta) -> int:
    """Delete rows delivered longer ago than ``older_than``.

    A delivered row has done its job: the business change and its event stay in their own tables
    (``receivable_events``, the ledger's records). Undelivered and dead rows are never pruned.
    """
    result = await session.execute(
        text("DELETE FROM platform.outbox WHERE delivered_at < :before"),
        {"before": utcnow() - older_than},
    )
    return int(getattr(result, "rowcount", 0))


async def requeue_dead(session: AsyncSession) -> int:
    """Give dead-lettered events a fresh set of attempts (after the cause was fixed)."""
    result = await session.execute(
        text(
            "UPDATE platform.outbox SET dead_at = NULL, attempts = 0, next_attempt_at = now() "
            "WHERE dead_at IS NOT NULL AND delivered_at IS NULL"
        )
    )
    return int(getattr(result, "rowcount", 0))


def topics_for(task_names: Sequence[str]) -> list[str]:
    return [topic for topic, name in CONSUMERS.items() if name in task_names]
