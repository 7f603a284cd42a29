"""Consumes ``receivable.event`` from the outbox into the ledger's inbox."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit.outbox import Envelope
from qilian.kit.tasks import outbox_consumer
from services.ledger.ingest.models import InboxEvent


@outbox_consumer("receivable.event")
async def ingest_receivable_event(session: AsyncSession, envelope: Envelope) -> None:
    await session.execute(
        insert(InboxEvent)
        .values(event_id=envelope.event_id, topic=envelope.topic, payload=envelope.payload)
        .on_conflict_do_nothing(index_elements=["event_id"])
    )
