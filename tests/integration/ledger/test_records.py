"""Inbox events become records chained per receivable; invalid ones are rejected and kept."""

from __future__ import annotations

from typing import Any

from qilian.kit import db
from services.ledger.anchoring import service
from services.ledger.records.canonical import ReceivableEventRecord, entry_id, record_hash
from services.ledger.records.keccak import to_hex
from tests.integration.ledger.conftest import base_settings, event_payload, feed, new_id, rows


async def build(**update: Any) -> service.RecordsOutcome:
    async with db.transaction() as session:
        return await service.build_records(session, base_settings(**update))


async def test_records_chain_prev_to_the_record_hash_of_the_previous_event():
    rid = new_id("rcv")
    ids = [await feed(event_payload(rid, seq)) for seq in (1, 2, 3)]
    outcome = await build()
    assert sorted(outcome.accepted) == sorted(ids)
    stored = await rows(
        "SELECT event_id, seq, record, record_hash, entry_id FROM ledger.records"
        " WHERE receivable_id = :rid ORDER BY seq",
        rid=rid,
    )
    assert [r.seq for r in stored] == [1, 2, 3]
    assert stored[0].record["prev"] is None
    assert stored[1].record["prev"] == stored[0].record_hash
    assert stored[2].record["prev"] == stored[1].record_hash
    for row in stored:
        record = ReceivableEventRecord.model_validate(row.record)
        assert to_hex(record_hash(record)) == row.record_hash
        assert to_hex(entry_id(row.event_id)) == row.entry_id
        assert record.event_id == row.event_id
    assert len({r.record["salt"] for r in stored}) == 3
    processed = await rows("SELECT error FROM ledger.event_inbox WHERE processed_at IS NOT NULL")
    assert [r.error for r in processed] == [None, None, None]


async def test_event_waits_until_its_predecessor_arrives():
    rid = new_id("rcv")
    third = await feed(event_payload(rid, 3))
    second = await feed(event_payload(rid, 2))
    assert (await build()).accepted == []
    assert len(await rows("SELECT 1 FROM ledger.event_inbox WHERE processed_at IS NULL")) == 2

    first = await feed(event_payload(rid, 1))
    assert (await build()).accepted == [first, second, third]
    chain = await rows(
        "SELECT seq, record->>'prev' AS prev, record_hash FROM ledger.records"
        " WHERE receivable_id = :rid ORDER BY seq",
        rid=rid,
    )
    assert [c.prev for c in chain] == [None, chain[0].record_hash, chain[1].record_hash]


async def test_waiting_events_do_not_crowd_out_ready_ones():
    orphans = [await feed(event_payload(new_id("rcv"), 5)) for _ in range(5)]
    ready = await feed(event_payload(new_id("rcv"), 1))
    outcome = await build(records_per_pass=3)
    assert outcome.accepted == [ready]
    left = await rows("SELECT event_id FROM ledger.event_inbox WHERE processed_at IS NULL")
    assert sorted(r.event_id for r in left) == sorted(orphans)


async def test_invalid_payloads_are_rejected_with_their_reason_and_kept():
    rid = new_id("rcv")
    bad = {
        await feed({"n": 1}): "missing members",
        await feed([1, 2, 3]): "not a JSON object",
        await feed({**event_payload(rid, 1), "seq": "1"}): "seq",
        await feed(event_payload(rid, 1, amount=1.5)): "unexpected members ['amount']",
        await feed(event_payload(rid, 1, data={"amount": 12.5})): "floats are refused",
        await feed(event_payload(rid, 1, at="yesterday")): "at:",
        await feed(event_payload(rid, 0)): "seq",
    }
    good = await feed(event_payload(rid, 1))
    outcome = await build()
    assert outcome.accepted == [good]
    assert set(outcome.rejected) == set(bad)
    stored = {
        r.event_id: r
        for r in await rows("SELECT event_id, payload, processed_at, error FROM ledger.event_inbox")
    }
    assert len(stored) == len(bad) + 1
    for event_id, fragment in bad.items():
        assert stored[event_id].processed_at is not None
        assert fragment in stored[event_id].error
    assert stored[good].error is None
    assert stored[next(iter(bad))].payload == {"n": 1}  # kept as received
    assert await build() == service.RecordsOutcome()  # decided once


async def test_second_event_with_a_taken_seq_is_rejected():
    rid = new_id("rcv")
    first = await feed(event_payload(rid, 1))
    await build()
    clash = await feed(event_payload(rid, 1, type="cancelled"))
    outcome = await build()
    assert outcome.rejected == {clash: f"seq 1 of receivable {rid} is taken by event {first}"}


async def test_redelivered_event_makes_one_record():
    rid = new_id("rcv")
    event_id = await feed(event_payload(rid, 1))
    await build()
    await feed(event_payload(rid, 1), event_id=event_id)  # the inbox ignores the duplicate
    await build()
    assert len(await rows("SELECT 1 FROM ledger.records WHERE receivable_id = :r", r=rid)) == 1
