"""Anchoring on a real anvil: roots land and proofs verify on chain, one transaction in flight per
account with contiguous nonces, finality by depth, reorgs, reconciliation, idempotent re-sends.

The module has its own anvil (it rewinds it) and each test a fresh ReceivableAnchor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import text
from web3 import Web3

from qilian.kit import db
from services.ledger.anchoring import metrics, service, tasks
from services.ledger.anchoring.chain import AnchorChain
from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.deployments import repository as deployments_repository
from services.ledger.records import merkle
from services.ledger.records.keccak import from_hex
from tests.integration.ledger.conftest import feed_receivables, rows


@pytest.fixture
async def saved_deployments() -> AsyncIterator[None]:
    """The session's deployment record, restored after a test that rewrites it."""
    saved = await rows("SELECT chain_id, name, address, tx_hash FROM ledger.deployments")
    yield
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM ledger.deployments"))
        for row in saved:
            await deployments_repository.upsert(
                session, row.chain_id, row.name, row.address, row.tx_hash
            )


async def prepare(settings: AnchoringSettings, receivables: int = 2, events: int = 3) -> list[int]:
    await feed_receivables(receivables, events)
    async with db.transaction() as session:
        await service.build_records(session, settings)
    async with db.transaction() as session:
        return await service.close_batches(session, settings)


async def step(settings: AnchoringSettings) -> service.StepOutcome:
    async with db.transaction() as session:
        return await service.anchor_step(session, settings)


async def reconcile(settings: AnchoringSettings) -> service.ReconcileReport:
    async with db.transaction() as session:
        return await service.reconcile(session, settings)


async def anchor_all(settings: AnchoringSettings, limit: int = 50) -> None:
    """Step until nothing is pending, sent or waiting (anvil mines each transaction at once)."""
    for _ in range(limit):
        await step(settings)
        open_ = await rows("SELECT 1 FROM ledger.batches WHERE status IN ('pending', 'sent')")
        if not open_:
            return
    raise AssertionError("batches still not anchored")


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


async def batches() -> list[Any]:
    return await rows(
        "SELECT id, root, status, tx_hash, nonce, block_number, block_hash, attempts, last_error"
        " FROM ledger.batches ORDER BY id"
    )


def sender_nonce(w3: Web3, settings: AnchoringSettings) -> int:
    return w3.eth.get_transaction_count(Account.from_key(settings.anchorer_private_key).address)


async def test_anchoring_lands_the_root_and_verify_entry_accepts_a_proof_from_the_stored_dump(
    settings: AnchoringSettings, anchor: AnchorChain
):
    assert await prepare(settings) == [1]
    sent = await step(settings)
    assert sent.sent == 1
    tracked = await step(settings)
    assert tracked.anchored == [1]
    (batch,) = await batches()
    assert batch.status == "anchored"
    on_chain = anchor.batch(1)
    assert on_chain.root == from_hex(batch.root)
    assert on_chain.count == 6
    assert on_chain.block_number == batch.block_number
    receipt = anchor.receipt(batch.tx_hash)
    assert receipt is not None
    assert receipt.block_hash == batch.block_hash

    (stored,) = await rows("SELECT dump FROM ledger.batches WHERE id = 1")
    tree = merkle.load(stored.dump)
    for record in await rows("SELECT entry_id, record_hash FROM ledger.records"):
        entry, value = from_hex(record.entry_id), from_hex(record.record_hash)
        ok, timestamp, block_number = anchor.verify_entry(
            1, entry, value, tree.proof_for(entry, value)
        )
        assert ok
        assert block_number == batch.block_number
        assert timestamp > 0
    assert anchor.verify_entry(1, b"\x01" * 32, b"\x02" * 32, [])[0] is False


async def test_batch_becomes_final_only_at_the_confirmation_depth(
    settings: AnchoringSettings, w3: Web3
):
    await prepare(settings)
    await anchor_all(settings)
    assert [b.status for b in await batches()] == ["anchored"]
    rpc(w3, "evm_mine")  # one block on top: depth 2
    outcome = await step(settings)
    assert outcome.final == [1]
    assert [b.status for b in await batches()] == ["final"]


async def test_finalized_tag_mode_waits_for_the_finalized_block(
    settings: AnchoringSettings, w3: Web3
):
    tagged = settings.model_copy(update={"finality": "finalized"})
    await prepare(tagged)
    await anchor_all(tagged)
    # anvil reports a finalized block some way behind the head; mine past it
    for _ in range(70):
        rpc(w3, "evm_mine")
        if (await step(tagged)).final:
            break
    (batch,) = await batches()
    assert batch.status == "final"
    assert w3.eth.get_block("finalized")["number"] >= batch.block_number


async def test_concurrent_anchoring_sends_one_transaction_at_a_time_with_contiguous_nonces(
    settings: AnchoringSettings, w3: Web3, anchor: AnchorChain
):
    many = settings.model_copy(update={"batch_max_leaves": 2})
    assert await prepare(many, receivables=4, events=3) == [1, 2, 3, 4, 5, 6]
    start = sender_nonce(w3, settings)
    rpc(w3, "evm_setAutomine", False)  # transactions wait in the pool until a block is mined
    try:
        for expected in range(1, 7):
            outcomes = await asyncio.gather(*(step(settings) for _ in range(20)))
            assert [o.sent for o in outcomes if o.sent is not None] == [expected]
            assert all(o.in_flight for o in outcomes)
            assert int(rpc(w3, "txpool_status")["pending"], 16) == 1
            rpc(w3, "evm_mine")
    finally:
        rpc(w3, "evm_setAutomine", True)
    await step(settings)
    stored = await batches()
    assert [b.status for b in stored] == ["final"] * 5 + ["anchored"]  # depth 2
    assert [b.nonce for b in stored] == list(range(start, start + 6))
    assert sender_nonce(w3, settings) == start + 6  # no second transaction for any batch
    assert anchor.last_batch_id() == 6
    assert all(b.attempts == 1 for b in stored)


async def test_batch_whose_block_a_reorg_dropped_returns_to_pending_and_is_anchored_again(
    settings: AnchoringSettings, w3: Web3, anchor: AnchorChain
):
    await prepare(settings)
    await anchor_all(settings)
    (before,) = await batches()
    assert before.status == "anchored"

    rpc(w3, "anvil_reorg", 1, [])  # the anchoring block is replaced by an empty one
    assert w3.eth.get_block(before.block_number)["hash"].to_0x_hex() != before.block_hash
    assert not anchor.batch(1).exists

    outcome = await step(settings)
    assert outcome.reset == [1]
    assert outcome.sent == 1  # sent again in the same step, nonce taken from the chain
    await anchor_all(settings)
    (after,) = await batches()
    assert after.status == "anchored"
    assert after.tx_hash != before.tx_hash
    assert after.nonce == before.nonce  # the dropped transaction's nonce is reused
    assert after.attempts == 2
    assert anchor.batch(1).root == from_hex(after.root)


async def test_reconciliation_reanchors_a_final_root_the_chain_lost(
    settings: AnchoringSettings, w3: Web3, anchor: AnchorChain
):
    snapshot = rpc(w3, "evm_snapshot")
    await prepare(settings)
    await anchor_all(settings)
    rpc(w3, "evm_mine")
    await step(settings)
    assert [b.status for b in await batches()] == ["final"]

    rpc(w3, "evm_revert", snapshot)  # the chain forgets the anchoring (and the contract's state)
    # the contract itself was deployed before the snapshot: redeploy state is not the question here
    assert anchor.has_code()
    assert not anchor.batch(1).exists
    assert (await step(settings)).sent is None  # final batches are not tracked by the step

    report = await reconcile(settings)
    assert report.checked == 1
    assert report.reset == [1]
    assert [b.status for b in await batches()] == ["pending"]
    await anchor_all(settings)
    (batch,) = await batches()
    assert batch.status == "anchored"
    assert anchor.batch(1).root == from_hex(batch.root)
    assert (await reconcile(settings)).reset == []


async def test_reconciliation_leaves_intact_batches_alone(settings: AnchoringSettings):
    await prepare(settings)
    await anchor_all(settings)
    report = await reconcile(settings)
    assert (report.checked, report.reset, report.conflicts) == (1, [], [])
    assert [b.status for b in await batches()] == ["anchored"]


async def test_a_root_that_already_landed_is_taken_as_anchored_without_a_second_send(
    settings: AnchoringSettings, w3: Web3, anchor: AnchorChain
):
    await prepare(settings)
    (batch,) = await batches()
    # the ledger sent it but crashed before recording it: the same root is on chain already
    gas = anchor.simulate(1, from_hex(batch.root), 6)
    signed = anchor.sign(1, from_hex(batch.root), 6, sender_nonce(w3, settings), gas)
    anchor.broadcast(signed)
    start = sender_nonce(w3, settings)

    outcome = await step(settings)
    assert outcome.sent is None
    assert outcome.anchored == [1]
    (after,) = await batches()
    assert after.status == "anchored"
    assert after.tx_hash == signed.tx_hash
    assert sender_nonce(w3, settings) == start


async def test_a_different_root_under_the_same_batch_id_is_a_loud_conflict(
    settings: AnchoringSettings, anchor: AnchorChain, w3: Web3
):
    await prepare(settings)
    other = b"\x42" * 32
    signed = anchor.sign(1, other, 1, sender_nonce(w3, settings), anchor.simulate(1, other, 1))
    anchor.broadcast(signed)

    outcome = await step(settings)
    assert outcome.sent is None
    assert outcome.error is not None
    (batch,) = await batches()
    assert batch.status == "pending"
    assert "another root" in batch.last_error


async def test_contract_without_code_is_reported_and_not_anchored(settings: AnchoringSettings):
    nowhere = settings.model_copy(update={"anchor_address": "0x" + "ab" * 20})
    await prepare(nowhere)
    report = await reconcile(nowhere)
    assert report.contract_missing
    assert report.redeployed is None  # a pinned address is never redeployed over
    assert [b.status for b in await batches()] == ["pending"]


async def test_in_development_a_wiped_contract_is_redeployed_and_everything_reanchored_from_batch_1(
    settings: AnchoringSettings, w3: Web3, saved_deployments: None
):
    wiped = "0x" + "cd" * 20
    async with db.transaction() as session:
        await deployments_repository.upsert(
            session, settings.chain_id, "ReceivableAnchor", wiped, "0x"
        )
    dev = settings.model_copy(update={"anchor_address": None, "redeploy_missing_contract": True})
    await prepare(dev)
    await anchor_all(dev.model_copy(update={"anchor_address": settings.anchor_address}))
    assert [b.status for b in await batches()] == ["anchored"]  # on the old contract

    report = await reconcile(dev)
    assert report.contract_missing
    assert report.redeployed is not None
    assert report.redeployed.lower() != wiped
    assert report.reset == [1]
    await anchor_all(dev)
    (batch,) = await batches()
    assert batch.status == "anchored"
    fresh = AnchorChain(dev.rpc_url, report.redeployed, dev.anchorer_private_key)
    assert fresh.batch(1).root == from_hex(batch.root)
    assert (await reconcile(dev)).reset == []


async def test_one_tick_takes_inbox_events_to_an_anchored_root(
    settings: AnchoringSettings, anchor: AnchorChain
):
    await feed_receivables(3, 2)
    report = await tasks.tick(settings)
    assert (report.accepted, report.rejected) == (6, 0)
    assert report.closed == [1]
    assert report.sent == [1]
    (batch,) = await batches()
    assert batch.status == "anchored"
    assert anchor.batch(1).root == from_hex(batch.root)
    assert metrics.ANCHORING_LAG._value.get() == 0
    assert metrics.BATCHES.labels("anchored")._value.get() == 1


async def test_anchoring_transaction_mined_again_in_a_reorged_block_is_followed_not_resent(
    settings: AnchoringSettings, w3: Web3, anchor: AnchorChain
):
    deep = settings.model_copy(update={"confirmations": 4})
    await prepare(deep)
    await anchor_all(deep)
    (before,) = await batches()
    raw = rpc(w3, "eth_getRawTransactionByHash", before.tx_hash)
    rpc(w3, "evm_mine")
    # replace the anchoring block and the one after it; the same transaction lands one block later
    rpc(w3, "anvil_reorg", 2, [[raw, 1]])
    assert w3.eth.get_block(before.block_number)["hash"].to_0x_hex() != before.block_hash
    start = sender_nonce(w3, deep)

    outcome = await step(deep)
    assert (outcome.sent, outcome.reset) == (None, [])
    (after,) = await batches()
    assert after.status == "anchored"
    assert after.tx_hash == before.tx_hash
    assert after.block_number == before.block_number + 1
    assert after.block_hash != before.block_hash
    assert after.attempts == 1
    assert sender_nonce(w3, deep) == start
    assert anchor.batch(1).block_number == after.block_number
