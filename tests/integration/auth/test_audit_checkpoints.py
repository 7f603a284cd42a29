"""The audit chain's head is checkpointed into the ledger's stream ``audit-log`` (anchored like a
receivable's events); cutting the newest rows short is then detected."""

import json

from sqlalchemy import text

from qilian.kit import db
from services.api.audit import checkpoints
from services.api.audit import service as audit
from services.ledger.anchoring.service import validate_payload


async def outbox_payload(event_id: str) -> tuple[str, dict[str, object]]:
    async with db.transaction() as session:
        row = (
            await session.execute(
                text("SELECT topic, payload FROM platform.outbox WHERE event_id = :e"),
                {"e": event_id},
            )
        ).one()
    return row.topic, row.payload


async def test_a_moved_head_is_checkpointed_once_as_a_valid_ledger_event(db_engine):
    async with db.transaction() as session:
        entry = await audit.append(session, audit.SYSTEM, "test.checkpoint_target")
    async with db.transaction() as session:
        first = await checkpoints.checkpoint(session)
    assert first is not None
    assert (first.audit_seq, first.audit_hash) == (entry.seq, entry.hash)
    async with db.transaction() as session:
        assert await checkpoints.checkpoint(session) is None  # the head did not move

    topic, payload = await outbox_payload(first.event_id)
    assert topic == "receivable.event"
    assert payload["receivable_id"] == checkpoints.STREAM_ID
    assert payload["data"] == {"audit_seq": entry.seq, "audit_hash": entry.hash}
    assert validate_payload(first.event_id, topic, payload) is None

    async with db.transaction() as session:
        await audit.append(session, audit.SYSTEM, "test.checkpoint_target")
    async with db.transaction() as session:
        second = await checkpoints.checkpoint(session)
    assert second is not None
    assert second.seq == first.seq + 1


async def test_rows_deleted_past_a_checkpoint_are_detected(db_engine):
    async with db.transaction() as session:
        entry = await audit.append(session, audit.SYSTEM, "test.truncation_target")
        cp = await checkpoints.checkpoint(session)
    assert cp is not None
    async with db.transaction() as session:
        assert await checkpoints.verify_checkpoints(session) == []

    engine = db.get_engine()
    async with engine.begin() as conn:  # as the table's owner, bypassing the append-only trigger
        await conn.execute(
            text("ALTER TABLE platform.audit_log DISABLE TRIGGER audit_log_append_only")
        )
        saved = (
            (
                await conn.execute(
                    text("SELECT * FROM platform.audit_log WHERE seq = :s"), {"s": entry.seq}
                )
            )
            .mappings()
            .one()
        )
        await conn.execute(text("DELETE FROM platform.audit_log WHERE seq = :s"), {"s": entry.seq})
    try:
        async with db.transaction() as session:
            problems = await checkpoints.verify_checkpoints(session)
            chain = await audit.verify(session)
        assert chain.ok  # the hash chain alone cannot see a cut at the head
        assert [(p.audit_seq, p.reason.split(":")[0]) for p in problems] == [
            (entry.seq, "row missing")
        ]
    finally:
        async with engine.begin() as conn:
            columns = ", ".join(saved.keys())
            values = ", ".join(f":{k}" for k in saved)
            params = dict(saved)
            params["details"] = json.dumps(params["details"])
            await conn.execute(
                text(f"INSERT INTO platform.audit_log ({columns}) VALUES ({values})"), params
            )
            await conn.execute(
                text("ALTER TABLE platform.audit_log ENABLE TRIGGER audit_log_append_only")
            )
    async with db.transaction() as session:
        assert await checkpoints.verify_checkpoints(session) == []
