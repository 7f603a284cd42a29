"""Batches close at max_leaves or max_wait, ids 1, 2, 3 … with no gaps even under concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

from qilian.kit import db
from services.ledger.anchoring import service
from services.ledger.records import merkle
from services.ledger.records.keccak import from_hex, to_hex
from tests.integration.ledger.conftest import base_settings, feed_receivables, rows


async def build_and_close(**update: Any) -> list[int]:
    settings = base_settings(**update)
    async with db.transaction() as session:
        await service.build_records(session, settings)
    async with db.transaction() as session:
        return await service.close_batches(session, settings)


async def test_batch_closes_at_max_leaves_without_waiting():
    await feed_receivables(5, 5)  # 25 records
    closed = await build_and_close(batch_max_leaves=10, batch_max_wait_seconds=3600)
    assert closed == [1, 2]
    batches = await rows("SELECT id, leaf_count FROM ledger.batches ORDER BY id")
    assert [(b.id, b.leaf_count) for b in batches] == [(1, 10), (2, 10)]
    assert len(await rows("SELECT 1 FROM ledger.records WHERE batch_id IS NULL")) == 5


async def test_partial_batch_closes_only_after_max_wait():
    await feed_receivables(1, 3)
    assert await build_and_close(batch_max_leaves=10, batch_max_wait_seconds=0.5) == []
    await asyncio.sleep(0.6)
    assert await build_and_close(batch_max_leaves=10, batch_max_wait_seconds=0.5) == [1]
    assert [b.leaf_count for b in await rows("SELECT leaf_count FROM ledger.batches")] == [3]


async def test_stored_dump_loads_back_to_the_stored_root_with_every_record():
    await feed_receivables(3, 4)
    assert await build_and_close(batch_max_wait_seconds=0) == [1]
    (batch,) = await rows("SELECT id, root, leaf_count, dump, status FROM ledger.batches")
    tree = merkle.load(batch.dump)
    assert to_hex(tree.root) == batch.root
    assert batch.status == "pending"
    records = await rows("SELECT entry_id, record_hash FROM ledger.records WHERE batch_id = 1")
    assert len(records) == batch.leaf_count == 12
    for record in records:
        entry, value = from_hex(record.entry_id), from_hex(record.record_hash)
        assert merkle.verify(tree.root, entry, value, tree.proof_for(entry, value))


async def test_concurrent_closers_allocate_contiguous_ids_and_batch_each_record_once():
    await feed_receivables(20, 5)  # 100 records
    settings = base_settings(batch_max_leaves=3, batch_max_wait_seconds=0)
    async with db.transaction() as session:
        await service.build_records(session, settings)

    async def closer() -> list[int]:
        async with db.transaction() as session:
            return await service.close_batches(session, settings)

    results = await asyncio.gather(*(closer() for _ in range(20)))
    ids = sorted(i for batch in results for i in batch)
    assert ids == list(range(1, 35))  # 33 full batches and one of 1
    counts = await rows(
        "SELECT b.id, b.leaf_count, count(r.event_id) AS n FROM ledger.batches b"
        " JOIN ledger.records r ON r.batch_id = b.id GROUP BY b.id ORDER BY b.id"
    )
    assert [c.id for c in counts] == ids
    assert all(c.n == c.leaf_count for c in counts)
    assert sum(c.n for c in counts) == 100
    assert await rows("SELECT 1 FROM ledger.records WHERE batch_id IS NULL") == []
